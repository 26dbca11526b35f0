// Pages/FaultInjection.cs — makes the OS "refuse" page requests on demand, so tests can prove the out-of-space paths.
namespace Kmem.Pages;

internal static class FaultInjection
{
    private static int s_failPageRequests;

    /// <summary>The next <paramref name="count"/> page requests fail as if the OS refused them.</summary>
    public static void FailNextPageRequests(int count) => Volatile.Write(ref s_failPageRequests, count);

    public static bool FailPageRequest()
    {
        if (Volatile.Read(ref s_failPageRequests) <= 0)
            return false;
        return Interlocked.Decrement(ref s_failPageRequests) >= 0;
    }
}

// Pages/FaultInjection.cs — failure injection (FreeBSD's MALLOC_MAKE_FAILURES, extended to page requests): every n-th
// NoWait malloc returns null, every n-th OS page request is refused, and the counts of failures injected so far.
// Tests can also refuse the next few page requests outright (FailNextPageRequests: the OS refusing for good).
// Injected page failures are transient by design: callers that must not fail (WaitOk malloc, per-CPU memory, Kmem's own
// metadata) retry once with the injection suspended for their own requests; a refusal from FailNextPageRequests or the
// OS is not retried.
namespace Kmem.Pages;

internal static class FaultInjection
{
    private static int s_failPageRequests;

    private static int s_noWaitEvery = KmemOptions.ParseInt(Environment.GetEnvironmentVariable("KMEM_FAIL_NOWAIT"), 0, 0, int.MaxValue);
    private static int s_pagesEvery = KmemOptions.ParseInt(Environment.GetEnvironmentVariable("KMEM_FAIL_PAGES"), 0, 0, int.MaxValue);
    private static long s_noWaitCalls, s_pageCalls;
    private static long s_noWaitInjected, s_pagesInjected;

    // Set when this thread's last page request was refused by the every-n-th injection (cleared by the retry test);
    // while t_retrying is above 0 the thread is retrying and the periodic injection spares its requests.
    [ThreadStatic] private static bool t_injected;
    [ThreadStatic] private static int t_retrying;

    /// <summary>The next <paramref name="count"/> page requests fail as if the OS refused them.</summary>
    public static void FailNextPageRequests(int count) => Volatile.Write(ref s_failPageRequests, count);

    public static int NoWaitEvery => Volatile.Read(ref s_noWaitEvery);
    public static int PagesEvery => Volatile.Read(ref s_pagesEvery);
    public static long NoWaitInjected => Volatile.Read(ref s_noWaitInjected);
    public static long PagesInjected => Volatile.Read(ref s_pagesInjected);

    /// <summary>Sets the NoWait period (0 = off) and restarts its count. The caller refreshes the types' gates.</summary>
    public static void SetNoWaitEvery(int every)
    {
        Volatile.Write(ref s_noWaitCalls, 0);
        Volatile.Write(ref s_noWaitEvery, every);
    }

    public static void SetPagesEvery(int every)
    {
        Volatile.Write(ref s_pageCalls, 0);
        Volatile.Write(ref s_pagesEvery, every);
    }

    /// <summary>Whether this NoWait malloc fails (only asked on the checked path, which every malloc takes while the
    /// NoWait injection is on). Kmem's own types are spared: their callers have no null to hand on.</summary>
    public static bool FailNoWait(MallocType type)
    {
        int every = Volatile.Read(ref s_noWaitEvery);
        if (every == 0 || type.Internal)
            return false;
        if (Interlocked.Increment(ref s_noWaitCalls) % every != 0)
            return false;
        Interlocked.Increment(ref s_noWaitInjected);
        return true;
    }

    /// <summary>Whether this page request fails: refused outright (FailNextPageRequests) or the n-th of the period.</summary>
    public static bool FailPageRequest()
    {
        t_injected = false; // the mark describes this thread's last request only
        if (Volatile.Read(ref s_failPageRequests) > 0 && Interlocked.Decrement(ref s_failPageRequests) >= 0)
            return true;
        int every = Volatile.Read(ref s_pagesEvery);
        if (every == 0 || t_retrying > 0 || Interlocked.Increment(ref s_pageCalls) % every != 0)
            return false;
        Interlocked.Increment(ref s_pagesInjected);
        t_injected = true;
        return true;
    }

    /// <summary>Commits pages for Kmem's own metadata (thread caches, the scanner's buffers and bitmaps): an injected
    /// failure is retried, since it is transient; a real refusal returns false.</summary>
    public static bool CommitMetadata(Platform.IPageProvider pages, nint start, nuint bytes)
    {
        if (!FailPageRequest())
            return pages.Commit(start, bytes);
        return RetryIfInjected(() => !FailPageRequest() && pages.Commit(start, bytes) ? 1 : 0, out nint committed) && committed != 0;
    }

    /// <summary>Whether this thread's last page refusal was injected by the period (and clears the mark).</summary>
    private static bool TakeInjected()
    {
        bool injected = t_injected;
        t_injected = false;
        return injected;
    }

    /// <summary>
    /// For a caller that cannot fail (WaitOk): when this thread's last page request was refused by the periodic
    /// injection (transient by design), runs <paramref name="attempt"/> once more with the injection sparing this thread,
    /// so the retry meets only real refusals, and returns true with its result. False (no retry) otherwise.
    /// </summary>
    public static bool RetryIfInjected(Func<nint> attempt, out nint result)
    {
        result = 0;
        if (!TakeInjected() || t_retrying > 0)
            return false;
        t_retrying++;
        try
        {
            result = attempt();
            return true;
        }
        finally
        {
            t_retrying--;
        }
    }
}

// HeapHealth.cs — the one place the tests ask Kmem whether its heap is healthy (Heap.Verify), so a change of Verify's
// shape is one edit here.
using Xunit;

namespace Kmem.Tests;

internal static class TestSupport
{
    /// <summary>Heap.Verify finds nothing wrong with the heap's metadata.</summary>
    public static void AssertHeapHealthy()
    {
        // Verify is exact only while no other thread allocates or frees: callers run in a non-parallel collection.
        IReadOnlyList<string> problems = Heap.Verify();
        Assert.True(problems.Count == 0, $"the heap is not healthy:\n{string.Join("\n", problems.Take(10))}");
    }
}

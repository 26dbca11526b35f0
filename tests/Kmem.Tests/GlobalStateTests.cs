// GlobalStateTests.cs — tests that change process-wide state: refused OS pages, the panic policy.
using Kmem.Pages;
using Xunit;

namespace Kmem.Tests;

[Collection(GlobalStateCollection.Name)]
public unsafe class GlobalStateTests
{
    [Fact]
    public void When_the_OS_refuses_pages_NoWait_and_CanFail_return_null_and_WaitOk_panics()
    {
        var type = Types.New();
        try
        {
            FaultInjection.FailNextPageRequests(1);
            Assert.True(Heap.Malloc(1 << 20, type, MallocFlags.NoWait) == null);
            FaultInjection.FailNextPageRequests(1);
            Assert.True(Heap.Malloc(1 << 20, type, MallocFlags.CanFail) == null);
            FaultInjection.FailNextPageRequests(1);
            PanicAssert.Panics("malloc: out of space in kmem_map", () => Heap.Malloc(1 << 20, type));
        }
        finally
        {
            FaultInjection.FailNextPageRequests(0);
        }
        MallocTypeStats s = type.GetStats();
        Assert.Equal(0, s.Requests);
        Assert.Equal(0, s.MemUse);
        void* p = Heap.Malloc(1 << 20, type);
        Assert.True(p != null);
        Heap.Free(p, type);
    }

    [Fact]
    public void A_slab_that_cannot_get_pages_fails_the_same_way()
    {
        var type = Types.New();
        // Exhaust what this thread and the depot hold of a class nobody else uses in this collection, then refuse pages.
        const int size = 28672;
        var blocks = new List<nint>();
        try
        {
            for (int i = 0; i < 64; i++)
                blocks.Add((nint)Heap.Malloc(size, type));
            FaultInjection.FailNextPageRequests(1000);
            void* p;
            int extra = 0;
            while ((p = Heap.Malloc(size, type, MallocFlags.NoWait)) != null && extra < 1000)
            {
                blocks.Add((nint)p);
                extra++;
            }
            Assert.True(p == null, "with pages refused, the class runs dry");
            PanicAssert.Panics("malloc: out of space in kmem_map", () => Heap.Malloc(size, type));
        }
        finally
        {
            FaultInjection.FailNextPageRequests(0);
        }
        foreach (nint b in blocks)
            Heap.Free((void*)b, type);
        Assert.Equal(0, type.GetStats().MemUse);
    }

    [Fact]
    public void Double_free_of_a_large_block_panics_duplicated_free()
    {
        // Alone, so no other test's large block can take the freed units in between.
        var type = Types.New();
        void* big = Heap.Malloc(200_000, type);
        Heap.Free(big, type);
        PanicAssert.Panics("free: duplicated free", () => Heap.Free(big, type));
        Assert.Contains($"multiply freed item 0x{(nuint)big:x}", KmemDiagnostics.Recent.Select(m => m.Split('\n')[0]));
        Assert.Equal(0, type.GetStats().InUse);
    }

    [Fact]
    public void A_large_block_freed_twice_after_its_units_could_have_been_reused_still_panics()
    {
        // Freed runs wait FIFO before reuse: blocks allocated in between (large ones, and slabs carved from new units)
        // do not take the freed units, so the second free still finds them released.
        var type = Types.New();
        void* big = Heap.Malloc(300_000, type);
        Heap.Free(big, type);
        var others = new List<nint>();
        for (int i = 0; i < 8; i++)
            others.Add((nint)Heap.Malloc(300_000, type));
        for (int i = 0; i < 2000; i++)
            others.Add((nint)Heap.Malloc((nuint)(1000 + i % 7 * 2000), type)); // new slabs of several classes
        foreach (nint o in others)
            Assert.False(o >= (nint)big && o < (nint)big + 300_000, "a freed run was reused at once");
        PanicAssert.Panics("free: duplicated free", () => Heap.Free(big, type));
        foreach (nint o in others)
            Heap.Free((void*)o, type);
        Assert.Equal(0, type.GetStats().InUse);
    }

    [Fact]
    public void Panic_mode_is_validated()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => KmemOptions.Panic = (PanicMode)7);
        Assert.Equal(PanicMode.Throw, KmemOptions.Panic);
    }
}

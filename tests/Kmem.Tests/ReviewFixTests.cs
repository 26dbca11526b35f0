// ReviewFixTests.cs — a corrupted free list is refused without changing anything; a caller waiting at a default-style
// (chunk-accounted) limit is woken by frees that land in thread credit.
using Xunit;

namespace Kmem.Tests;

[Collection(GlobalStateCollection.Name)]
public unsafe class ReviewFixTests
{
    [Fact]
    public void A_use_after_free_write_to_a_free_list_link_panics_and_changes_nothing()
    {
        var type = Types.New();
        const int size = 13000; // a class no other test uses in this collection
        void* keep = Heap.Malloc(size, type);
        void* x = Heap.Malloc(size, type);
        Heap.Free(x, type);
        *(nuint*)x = 0x12345678;            // garbage link in the freed block
        Assert.True(Heap.Malloc(size, type) == x); // the block itself is still fine
        MallocTypeStats before = type.GetStats();
        Assert.Throws<KmemPanicException>(() => Heap.Malloc(size, type)); // follows the garbage link
        MallocTypeStats after = type.GetStats();
        Assert.Equal(before.MemUse, after.MemUse);
        Assert.Equal(before.InUse, after.InUse);
        void* again = Heap.Malloc(size, type); // the dropped list is replaced by a fresh one
        Assert.True(again != null);
        Heap.Free(again, type);
        Heap.Free(x, type);
        Heap.Free(keep, type);
        Assert.Equal(0, type.GetStats().MemUse);
    }

    [Fact]
    public void A_waiter_at_a_chunk_accounted_limit_is_woken_by_frees_into_thread_credit()
    {
        var type = Types.New();
        Volatile.Write(ref type.LimitBytes, 512 * 1024); // the default-limit rule (credit in 64 KiB chunks), scaled down
        var blocks = new List<nint>();
        void* p;
        while ((p = Heap.Malloc(1024, type, MallocFlags.NoWait)) != null)
            blocks.Add((nint)p);
        using var done = new ManualResetEventSlim();
        var waiter = new Thread(() =>
        {
            Heap.Free(Heap.Malloc(1024, type), type); // WaitOk
            done.Set();
        }) { IsBackground = true };
        waiter.Start();
        Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref type.Waiters) > 0, TimeSpan.FromSeconds(30)));
        for (int i = 0; i < 100; i++)
            Heap.Free((void*)blocks[i], type); // this thread stays alive
        Assert.True(done.Wait(TimeSpan.FromSeconds(30)), "the waiter was not woken");
        foreach (nint b in blocks.Skip(100))
            Heap.Free((void*)b, type);
        Assert.Equal(0, type.GetStats().MemUse);
    }
}

// MallocBatchTests.cs — Heap.Batch: a batch's blocks are ordinary blocks of its type (statistics, limits, M_ZERO, leak
// reports with the batch's site, DIAGNOSTIC checks), either side may free them, and on any thread.
using Xunit;

namespace Kmem.Tests;

[Collection(KmemleakCollection.Name)] // one test scans for leaks
public unsafe class MallocBatchTests
{
    [Fact]
    public void Batch_blocks_are_counted_as_Malloc_blocks_and_either_side_frees_them()
    {
        var type = Types.New();
        nuint[] sizes = [1, 16, 64, 100, 512, 2048, 4096, 20_000, 100_000]; // the last is a large block (whole pages)
        var blocks = new List<nint>();
        MallocBatch batch = Heap.Batch(type);
        Assert.Same(type, batch.Type);
        foreach (nuint size in sizes)
        {
            byte* p = (byte*)batch.Malloc(size);
            p[0] = 1;
            p[size - 1] = 2;
            blocks.Add((nint)p);
        }
        MallocTypeStats s = type.GetStats();
        Assert.Equal(sizes.Length, s.InUse);
        Assert.Equal(sizes.Length, s.Requests);
        Assert.Equal(sizes.Sum(z => (long)Heap.Roundup(z)), s.MemUse);
        for (int i = 0; i < blocks.Count; i++)
        {
            if (i % 2 == 0)
                batch.Free((void*)blocks[i]);
            else
                Heap.Free((void*)blocks[i], type);
        }
        void* fromMalloc = Heap.Malloc(64, type);
        batch.Free(fromMalloc);
        s = type.GetStats();
        Assert.Equal(0, s.InUse);
        Assert.Equal(0, s.MemUse);
        Assert.Equal(sizes.Length + 1, s.Requests);
        TestSupport.AssertHeapHealthy();
    }

    [Fact]
    public void Zero_NoWait_and_the_limit_apply_to_a_batch()
    {
        var type = Types.New(limit: 1000);
        MallocBatch batch = Heap.Batch(type);
        byte* dirty = (byte*)batch.Malloc(64);
        new Span<byte>(dirty, 64).Fill(0xAB);
        batch.Free(dirty);
        byte* clean = (byte*)batch.Malloc(64, MallocFlags.Zero);
        Assert.True(new ReadOnlySpan<byte>(clean, 64).IndexOfAnyExcept((byte)0) < 0);
        var blocks = new List<nint> { (nint)clean };
        void* p;
        while ((p = batch.Malloc(64, MallocFlags.NoWait)) != null)
            blocks.Add((nint)p);
        Assert.Equal(16, blocks.Count); // as with Heap.Malloc: the 16th block (1024 bytes) overshoots once
        Assert.Equal(1, type.GetStats().LimitBlocks);
        foreach (nint b in blocks)
            batch.Free((void*)b);
        Assert.Equal(0, type.GetStats().MemUse);
    }

    [Fact]
    public void A_batch_on_one_thread_and_frees_on_another()
    {
        var type = Types.New();
        var blocks = new nint[1000];
        var maker = new Thread(() =>
        {
            MallocBatch batch = Heap.Batch(type);
            for (int i = 0; i < blocks.Length; i++)
                blocks[i] = (nint)batch.Malloc(64);
        });
        maker.Start();
        maker.Join();
        Assert.Equal(blocks.Length, type.GetStats().InUse);
        MallocBatch here = Heap.Batch(type);
        foreach (nint b in blocks)
            here.Free((void*)b);
        Assert.Equal(0, type.GetStats().InUse);
        TestSupport.AssertHeapHealthy();
    }

    [Fact]
    public void A_DIAGNOSTIC_type_keeps_its_checks_through_a_batch()
    {
        var type = Types.New();
        type.Diagnostic = true;
        var messages = new List<string>();
        void OnMessage(KmemMessageKind kind, string text)
        {
            lock (messages)
                messages.Add(text);
        }
        KmemDiagnostics.Message += OnMessage;
        try
        {
            MallocBatch batch = Heap.Batch(type);
            // Allocation side: only DIAGNOSTIC's malloc puts a redzone after the 50 bytes, so only it sees this write.
            byte* q = (byte*)batch.Malloc(50);
            q[50] = 0;
            batch.Free(q);
            string after = "0x" + ((nuint)(q + 50)).ToString("x");
            string m;
            lock (messages)
                m = Assert.Single(messages, t => t.StartsWith($"REDZONE: Buffer overflow detected. 1 byte corrupted after {after} ", StringComparison.Ordinal));
            Assert.Contains($"type {type.ShortDesc}, allocated at {nameof(A_DIAGNOSTIC_type_keeps_its_checks_through_a_batch)} at ", m);
            // Free side: poisoned and quarantined, then a second free panics.
            void* p = batch.Malloc(64);
            batch.Free(p);
            Assert.Equal(0xdeadbeefu, *(uint*)p);
            var e = Assert.Throws<KmemPanicException>(() => Heap.Batch(type).Free(p));
            Assert.Contains("duplicated free", e.Message);
        }
        finally
        {
            KmemDiagnostics.Message -= OnMessage;
            type.Diagnostic = false;
        }
    }

    [Fact]
    public void A_leaked_batch_block_is_reported_at_the_site_that_made_the_batch()
    {
        Leaks.Reset();
        var type = Types.New();
        void* leaked = MakeAndLeak(type);
        LeakScanResult r = Leaks.ScanTwice();
        LeakReport report = Assert.Single(r.Of(type));
        Assert.Equal((nuint)leaked, report.Address);
        Assert.StartsWith(nameof(MakeAndLeak) + " at ", report.Site);
        Heap.Free(leaked, type);
        Kmemleak.Write("clear");
    }

    private static void* MakeAndLeak(MallocType type)
    {
        MallocBatch batch = Heap.Batch(type);
        return batch.Malloc(48);
    }
}

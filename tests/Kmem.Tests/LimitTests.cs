// LimitTests.cs — per-type limits: NoWait fails, WaitOk waits for a free or a new limit, usage overshoots by one block at most.
using Xunit;

namespace Kmem.Tests;

public unsafe class LimitTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public void NoWait_returns_null_once_the_limit_is_reached()
    {
        var type = Types.New(limit: 1000);
        var blocks = new List<nint>();
        void* p;
        while ((p = Heap.Malloc(64, type, MallocFlags.NoWait)) != null)
            blocks.Add((nint)p);
        // The test comes before the charge: 15 blocks make 960 < 1000, so a 16th is allowed (1024), then no more.
        Assert.Equal(16, blocks.Count);
        MallocTypeStats s = type.GetStats();
        Assert.Equal(1024, s.MemUse);
        Assert.True(s.MemUse <= 1000 + 64, "usage may overshoot the limit by one allocation only");
        Assert.Equal(1, s.LimitBlocks);
        Assert.Equal(16, s.Requests);
        Heap.Free((void*)blocks[0], type);
        p = Heap.Malloc(64, type, MallocFlags.NoWait);
        Assert.True(p != null, "a free makes room again");
        blocks[0] = (nint)p;
        foreach (nint b in blocks)
            Heap.Free((void*)b, type);
        Assert.Equal(0, type.GetStats().MemUse);
    }

    [Fact]
    public void A_large_request_is_admitted_below_the_limit_even_if_it_overshoots()
    {
        var type = Types.New(limit: 4096);
        void* p = Heap.Malloc(100_000, type, MallocFlags.NoWait);
        Assert.True(p != null);
        Assert.True(Heap.Malloc(16, type, MallocFlags.NoWait) == null);
        Heap.Free(p, type);
    }

    [Fact]
    public void WaitOk_blocks_until_a_free_brings_the_type_below_its_limit()
    {
        var type = Types.New(limit: 4096);
        void* held = Heap.Malloc(4096, type);
        var waiter = new Waiter(() => (nint)Heap.Malloc(1024, type)); // WaitOk
        // The waiter cannot finish while the type is at its limit.
        Assert.False(waiter.Wait(TimeSpan.FromMilliseconds(300)));
        Assert.True(SpinWait.SpinUntil(() => type.GetStats().LimitBlocks >= 1, Patience));
        Heap.Free(held, type);
        Assert.True(waiter.Wait(Patience), "the free woke the waiter");
        Assert.True(waiter.Result != 0);
        Heap.Free((void*)waiter.Result, type);
        Assert.Equal(0, type.GetStats().InUse);
    }

    [Fact]
    public void SetLimit_takes_effect_at_once_and_wakes_waiters_it_admits()
    {
        var type = Types.New(limit: 2048);
        void* held = Heap.Malloc(2048, type);
        var waiter = new Waiter(() => (nint)Heap.Malloc(512, type));
        Assert.True(SpinWait.SpinUntil(() => type.GetStats().LimitBlocks >= 1, Patience));
        Assert.False(waiter.Wait(TimeSpan.Zero));
        type.SetLimit(8192);
        Assert.Equal(8192ul, type.Limit);
        Assert.True(waiter.Wait(Patience), "raising the limit woke the waiter");
        Heap.Free((void*)waiter.Result, type);
        Heap.Free(held, type);

        // Lowering it refuses at once.
        void* a = Heap.Malloc(1024, type);
        type.SetLimit(512);
        Assert.True(Heap.Malloc(16, type, MallocFlags.NoWait) == null);
        Heap.Free(a, type);
        Assert.True(Heap.Malloc(16, type, MallocFlags.NoWait) is var b && b != null);
        Heap.Free(b, type);
    }

    [Fact]
    public void SetLimit_turns_a_default_type_exact_even_with_credit_held_by_threads()
    {
        var type = Types.New();
        void* small = Heap.Malloc(64, type); // this thread now holds credit charged ahead
        type.SetLimit(256);
        var blocks = new List<nint>();
        void* p;
        while ((p = Heap.Malloc(64, type, MallocFlags.NoWait)) != null && blocks.Count < 100)
            blocks.Add((nint)p);
        MallocTypeStats s = type.GetStats();
        Assert.Equal(4, s.InUse); // 64 + 3 × 64 = 256 reaches the limit
        Assert.True(s.MemUse <= 256 + 64);
        foreach (nint b in blocks)
            Heap.Free((void*)b, type);
        Heap.Free(small, type);
        Assert.Equal(0, type.GetStats().MemUse);
    }

    [Fact]
    public void Many_threads_never_push_a_limited_type_past_its_limit_by_more_than_one_allocation()
    {
        const long limit = 64 * 1024;
        var type = Types.New(limit: (ulong)limit);
        long worst = 0;
        Parallel.For(0, 4, _ =>
        {
            var rng = new Random();
            var mine = new List<nint>();
            for (int i = 0; i < 20_000; i++)
            {
                if (mine.Count > 0 && rng.Next(2) == 0)
                {
                    int k = rng.Next(mine.Count);
                    Heap.Free((void*)mine[k], type);
                    mine.RemoveAt(k);
                }
                else if (Heap.Malloc(1024, type, MallocFlags.NoWait) is var p && p != null)
                {
                    mine.Add((nint)p);
                }
                if (i % 64 == 0)
                    InterlockedMax(ref worst, type.GetStats().MemUse);
            }
            foreach (nint p in mine)
                Heap.Free((void*)p, type);
        });
        MallocTypeStats s = type.GetStats();
        Assert.True(s.HighUse <= limit + 1024, $"high use {s.HighUse}");
        Assert.True(s.HighUse >= limit, $"high use {s.HighUse}: four threads should have reached the limit");
        Assert.True(worst <= limit + 1024);
        Assert.Equal(0, s.MemUse);
        Assert.Equal(0, s.InUse);
    }

    [Fact]
    public void SetLimit_on_a_detached_type_panics()
    {
        var type = Types.New(attach: false);
        PanicAssert.Panics($"malloc_type_setlimit: type '{type.ShortDesc}' is not attached", () => type.SetLimit(100));
        type.Attach();
        type.Detach();
        Assert.Throws<KmemPanicException>(() => type.SetLimit(100));
    }

    /// <summary>Runs an allocation on its own thread, so the test can watch it wait.</summary>
    private sealed class Waiter
    {
        private readonly ManualResetEventSlim _done = new();
        private nint _result;

        public Waiter(Func<nint> work)
        {
            var t = new Thread(() =>
            {
                _result = work();
                _done.Set();
            }) { IsBackground = true };
            t.Start();
        }

        public bool Wait(TimeSpan timeout) => _done.Wait(timeout);

        public nint Result => _done.IsSet ? _result : throw new InvalidOperationException("still waiting");
    }

    private static void InterlockedMax(ref long target, long value)
    {
        long cur;
        while (value > (cur = Volatile.Read(ref target)) && Interlocked.CompareExchange(ref target, value, cur) != cur) { }
    }
}

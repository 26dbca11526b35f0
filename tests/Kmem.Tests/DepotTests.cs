// DepotTests.cs — the class depot's shards and carving: a thread's spilled batches come back to it and not to another
// thread, a dry bin carves the rest of the current slab before it takes another thread's batch (and takes that batch
// before it starts a new slab), and a carved run of a class with batches of 16 blocks is two, filling a cache line of
// owner entries.
using Kmem.Slabs;
using Xunit;

namespace Kmem.Tests;

[Collection(GlobalStateCollection.Name)] // reads and refills the shared depots: no other test may use them meanwhile
public unsafe class DepotTests
{
    [Fact]
    public void Blocks_a_thread_frees_past_its_bin_come_back_to_it_and_not_to_another_thread()
    {
        var type = Types.New();
        const nuint size = 700; // a class with batches of 32
        int batch = SizeClasses.BatchOf(SizeClasses.ClassOf(size));
        int count = 3 * batch;  // more than a bin and its spare hold: one batch goes to the depot
        var a = new Worker(type, size, count);
        var b = new Worker(type, size, count);
        a.Run(w => w.AllocateAll());
        b.Run(w => w.AllocateAll());
        a.Run(w => w.FreeAll());
        b.Run(w => w.FreeAll());    // b's batch is the depot's newest
        a.Run(w => w.AllocateAll());
        b.Run(w => w.AllocateAll());
        Assert.Empty(a.Now.Intersect(b.First));
        Assert.Empty(b.Now.Intersect(a.First));
        Assert.Subset(a.First, a.Now); // its own blocks, not loose ones or a new run
        Assert.Subset(b.First, b.Now);
        a.Run(w => w.FreeAll());
        b.Run(w => w.FreeAll());
        a.Stop();
        b.Stop();
        Assert.Equal(0, type.GetStats().MemUse);
    }

    [Fact]
    public void A_carved_run_of_a_class_with_batches_of_16_is_two_batches_ending_on_an_owner_cache_line()
    {
        Pages.KmemMap.EnsureStarted();
        int cls = SizeClasses.ClassOf(3000);
        ClassDepot depot = ClassDepot.All[cls];
        Assert.Equal(16, depot.Batch);
        const uint thread = 7;
        var taken = new List<(nuint Head, int Count)>();
        try
        {
            for (int carves = 0; carves < 2;)
            {
                long carved = depot.Carved;
                nuint spare = 0;
                int n = depot.Refill(thread, out nuint head, &spare);
                Assert.True(n > 0);
                taken.Add((head, n));
                if (spare != 0)
                    taken.Add((spare, depot.Batch));
                if (depot.Carved == carved)
                    continue; // a batch or loose blocks already in the depot
                carves++;
                uint slot = depot.Inspect(v => v.CarveSlot);
                if (slot >= SizeClasses.BlocksPerSlab(cls))
                    continue; // the run reached the end of its slab
                Assert.Equal(0u, slot % 32);
                Assert.True(spare != 0, "a carved run of two batches hands the second out as the spare");
                nuint size = SizeClasses.SizeOf(cls);
                Assert.Equal((nint)(BlockLink.Decode(head) + 16 * size), (nint)BlockLink.Decode(spare));
            }
        }
        finally
        {
            foreach ((nuint head, int n) in taken)
                depot.PushLoose(head, n);
        }
        TestSupport.AssertHeapHealthy();
    }

    [Fact]
    public void A_dry_bin_carves_the_rest_of_the_current_slab_before_it_takes_another_threads_batch_and_a_batch_before_a_new_slab()
    {
        Pages.KmemMap.EnsureStarted();
        int cls = SizeClasses.ClassOf(700); // batches of 32, a few hundred blocks a slab
        ClassDepot depot = ClassDepot.All[cls];
        uint perSlab = SizeClasses.BlocksPerSlab(cls);
        const uint thread = 7, other = 8; // other's shard is the first this thread's refill would look at
        var taken = new List<(nuint Head, int Count)>();
        int Refill()
        {
            int n = depot.Refill(thread, out nuint head, null);
            Assert.True(n > 0);
            taken.Add((head, n));
            return n;
        }
        long BatchesOf(uint t) => depot.Inspect(v => v.BatchCounts[t % ClassDepot.Shards]);
        try
        {
            // Empty this thread's shard and the loose blocks, and reach a slab with room for a whole batch.
            int run;
            do
            {
                long carved = depot.Carved;
                run = Refill();
                if (depot.Carved == carved)
                    run = 0;
            }
            while (run != depot.Batch || depot.Inspect(v => v.CarveSlot) + (uint)depot.Batch > perSlab);

            // The other thread's batch waits; this thread's refills carve the rest of the slab and leave it there.
            (nuint otherBatch, _) = taken[^1];
            taken.RemoveAt(taken.Count - 1);
            long waiting = BatchesOf(other);
            depot.PushBatch(other, otherBatch);
            // (A finalized thread cache may add loose blocks meanwhile; a refill takes those first, which is fine.)
            while (depot.Inspect(v => v.CarveSlot) < perSlab)
            {
                Refill();
                Assert.Equal(waiting + 1, BatchesOf(other));
            }

            // The slab is used up: a refill takes the waiting batch instead of starting a new slab.
            long carvedBefore = depot.Carved;
            while (BatchesOf(other) == waiting + 1)
            {
                Refill();
                Assert.Equal(carvedBefore, depot.Carved);
            }
            Assert.Equal(otherBatch, taken[^1].Head);
            Assert.Equal(waiting, BatchesOf(other));
        }
        finally
        {
            foreach ((nuint head, int n) in taken)
                depot.PushLoose(head, n);
        }
        TestSupport.AssertHeapHealthy();
    }

    [Fact]
    public void A_thread_without_a_cache_frees_through_the_checked_path_and_gets_a_cache_only_for_a_real_block()
    {
        var type = Types.New();
        void* block = Heap.Malloc(100, type);
        string? message = null;
        bool cacheAfterBadFree = true, cacheAfterFree = false;
        var t = new Thread(() =>
        {
            message = PanicAssert.PanicMessage(() => Heap.Free(null, type));
            cacheAfterBadFree = Caches.ThreadCaches.CurrentOrNull() != null;
            Heap.Free(block, type);
            cacheAfterFree = Caches.ThreadCaches.CurrentOrNull() != null;
        });
        t.Start();
        t.Join();
        Assert.StartsWith("free: null addr", message);
        Assert.False(cacheAfterBadFree);
        Assert.True(cacheAfterFree);
        Assert.Equal(0, type.GetStats().MemUse);
    }

    // A thread that allocates and frees a list of blocks on request (the depot's shard is the thread's).
    private sealed class Worker
    {
        private readonly MallocType _type;
        private readonly nuint _size;
        private readonly int _count;
        private readonly Thread _thread;
        private readonly SemaphoreSlim _go = new(0), _done = new(0);
        private Action<Worker>? _work;
        private readonly List<nint> _live = new();
        private volatile bool _stop;

        public Worker(MallocType type, nuint size, int count)
        {
            _type = type;
            _size = size;
            _count = count;
            _thread = new Thread(Loop) { IsBackground = true };
            _thread.Start();
        }

        public HashSet<nint> First { get; } = new();
        public HashSet<nint> Now { get; } = new();

        public void Run(Action<Worker> work)
        {
            _work = work;
            _go.Release();
            _done.Wait();
        }

        public void Stop()
        {
            _stop = true;
            Run(_ => { });
            _thread.Join();
        }

        public void AllocateAll()
        {
            HashSet<nint> into = First.Count == 0 ? First : Now;
            for (int i = 0; i < _count; i++)
            {
                nint p = (nint)Heap.Malloc(_size, _type);
                _live.Add(p);
                into.Add(p);
            }
        }

        public void FreeAll()
        {
            foreach (nint p in _live)
                Heap.Free((void*)p, _type);
            _live.Clear();
        }

        private void Loop()
        {
            while (true)
            {
                _go.Wait();
                _work!(this);
                _done.Release();
                if (_stop)
                    return;
            }
        }
    }
}

// ConcurrencyTests.cs — many threads, random sizes, cross-thread frees, contents verified; thread caches of dead threads.
using System.Collections.Concurrent;
using Kmem.Slabs;
using Xunit;

namespace Kmem.Tests;

public unsafe class ConcurrencyTests
{
    private static void Fill(byte* p, int size, int seed)
    {
        for (int i = 0; i < size; i++)
            p[i] = (byte)(seed + i);
    }

    private static bool Check(byte* p, int size, int seed)
    {
        for (int i = 0; i < size; i++)
            if (p[i] != (byte)(seed + i))
                return false;
        return true;
    }

    [Fact]
    public void Four_threads_with_cross_thread_frees_keep_contents_and_end_with_statistics_at_zero()
    {
        MallocType[] types = { Types.New(), Types.New(), Types.New(limit: 256 * 1024) };
        var handoff = new ConcurrentQueue<(nint P, int Size, int Seed, int Type)>();
        int corrupt = 0;
        const int threads = 4, ops = 40_000;
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            var rng = new Random(1234 + t);
            var mine = new List<(nint P, int Size, int Seed, int Type)>();
            for (int i = 0; i < ops; i++)
            {
                int action = rng.Next(10);
                if (action < 5 || mine.Count == 0)
                {
                    int size = rng.Next(4) == 0 ? rng.Next(1, 70_000) : rng.Next(1, 600);
                    int ti = rng.Next(types.Length);
                    int seed = rng.Next();
                    byte* p = (byte*)Heap.Malloc((nuint)size, types[ti], ti == 2 ? MallocFlags.NoWait : MallocFlags.WaitOk);
                    if (p == null)
                        continue; // the limited type refused: fine
                    Fill(p, size, seed);
                    mine.Add(((nint)p, size, seed, ti));
                }
                else
                {
                    int k = rng.Next(mine.Count);
                    var b = mine[k];
                    mine[k] = mine[^1];
                    mine.RemoveAt(mine.Count - 1);
                    if (action < 8)
                    {
                        if (!Check((byte*)b.P, b.Size, b.Seed))
                            Interlocked.Increment(ref corrupt);
                        Heap.Free((void*)b.P, types[b.Type]);
                    }
                    else
                    {
                        handoff.Enqueue(b); // another thread frees it
                    }
                }
                if (handoff.TryDequeue(out var other))
                {
                    if (!Check((byte*)other.P, other.Size, other.Seed))
                        Interlocked.Increment(ref corrupt);
                    Heap.Free((void*)other.P, types[other.Type]);
                }
            }
            foreach (var b in mine)
            {
                if (!Check((byte*)b.P, b.Size, b.Seed))
                    Interlocked.Increment(ref corrupt);
                Heap.Free((void*)b.P, types[b.Type]);
            }
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());
        while (handoff.TryDequeue(out var rest))
        {
            Assert.True(Check((byte*)rest.P, rest.Size, rest.Seed));
            Heap.Free((void*)rest.P, types[rest.Type]);
        }

        Assert.Equal(0, corrupt);
        foreach (MallocType t in types)
        {
            MallocTypeStats s = t.GetStats();
            Assert.Equal(0, s.InUse);
            Assert.Equal(0, s.MemUse);
            Assert.True(s.Requests > 1000);
            Assert.True(s.HighUse > 0);
        }
        long limitedHigh = types[2].GetStats().HighUse;
        Assert.True(limitedHigh <= 256 * 1024 + (long)Heap.Roundup(70_000), $"high use {limitedHigh}"); // one allocation over at most
    }

    [Fact]
    public void A_dead_threads_cached_blocks_go_back_to_the_depot_and_its_counts_survive()
    {
        var type = Types.New();
        int cls = SizeClasses.ClassOf(720);
        var fromDeadThread = new List<nint>();
        var t = new Thread(() =>
        {
            var blocks = new List<nint>();
            for (int i = 0; i < 100; i++)
                blocks.Add((nint)Heap.Malloc(720, type));
            for (int i = 0; i < 50; i++)
                Heap.Free((void*)blocks[i], type); // these stay in the thread's cache
            fromDeadThread.AddRange(blocks.Skip(50));
        });
        t.Start();
        t.Join();
        long cachedBefore = ClassDepot.All[cls].Cached;
        Assert.True(SpinWait.SpinUntil(() =>
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            return ClassDepot.All[cls].Cached >= cachedBefore + 50;
        }, TimeSpan.FromSeconds(30)), "the dead thread's cache was not given back");

        MallocTypeStats s = type.GetStats();
        Assert.Equal(50, s.InUse);
        Assert.Equal(100, s.Requests);
        foreach (nint p in fromDeadThread)
            Heap.Free((void*)p, type); // freed on this thread, into this thread's cache, never the dead one's
        s = type.GetStats();
        Assert.Equal(0, s.InUse);
        Assert.Equal(0, s.MemUse);
        Assert.Equal(100 * (long)Heap.Roundup(720), s.HighUse);
    }
}

// Types/TypeStatistics.cs — folds the per-thread deltas of a type into one snapshot (percpu_counter's sum()).
// HighUse is exact while one thread at a time uses a type; with concurrent users it is the sum of each thread's rise
// since the previous fold, an upper bound. Types with an explicit limit also track HighUse exactly at each charge.
using Kmem.Caches;
using Kmem.Pages;
using Kmem.Slabs;

namespace Kmem.Types;

internal static unsafe class TypeStatistics
{
    public static MallocTypeStats Fold(MallocType t) => Fold(t, out _);

    /// <summary>Folds a type and also gives its size set as bits (see <see cref="BucketSize"/>).</summary>
    public static MallocTypeStats Fold(MallocType t, out ulong sizeBits)
    {
        lock (ThreadCaches.Lock)
            return FoldLocked(t, out sizeBits);
    }

    /// <summary>Folds many types under one acquisition of the caches' lock (vmstat -m, Heap.TypeStats).</summary>
    public static MallocTypeStats[] FoldAll(MallocType[] types, ulong[]? sizeBits = null)
    {
        var stats = new MallocTypeStats[types.Length];
        lock (ThreadCaches.Lock)
        {
            for (int i = 0; i < types.Length; i++)
            {
                stats[i] = FoldLocked(types[i], out ulong bits);
                if (sizeBits is not null)
                    sizeBits[i] = bits;
            }
        }
        return stats;
    }

    private static MallocTypeStats FoldLocked(MallocType t, out ulong sizeBits)
    {
        long allocs, frees, net, rise = 0;
        ulong sizes;
        allocs = t.RetiredAllocs;
        frees = t.RetiredFrees;
        net = t.RetiredNet;
        sizes = t.RetiredSizes;
        foreach (nint tc in ThreadCaches.LiveUnderLock)
        {
            TypeSlot* s = ThreadCaches.Slot((byte*)tc, t.Index);
            allocs += s->Allocs;
            frees += s->Frees;
            long credit = s->Credit;
            long n = s->Charged - credit;
            net += n;
            sizes |= s->Sizes;
            rise += Math.Max(0, s->Peak - s->NetAtFold);
            s->NetAtFold = n;
            s->LowCredit = credit;
        }
        // Exactly accounted types raise HighUse at every charge; the others get the bound from per-thread rises.
        TypeAccounting.RaiseHighUse(t, Volatile.Read(ref t.Chunk) == 0 ? net : Math.Max(net, t.LastFoldTotal + rise));
        t.LastFoldTotal = net;
        sizeBits = sizes;
        return new MallocTypeStats(t.ShortDesc, allocs - frees, net, Volatile.Read(ref t.HighUseBytes), t.Limit, allocs,
            Volatile.Read(ref t.LimitBlockCount), SizesOf(sizes));
    }

    /// <summary>The block sizes named by a type's size set: small classes, then large power-of-two buckets.</summary>
    public static IReadOnlyList<ulong> SizesOf(ulong bits)
    {
        var sizes = new ulong[System.Numerics.BitOperations.PopCount(bits)];
        for (int n = 0; bits != 0; bits &= bits - 1)
            sizes[n++] = BucketSize(System.Numerics.BitOperations.TrailingZeroCount(bits));
        return sizes;
    }

    /// <summary>Bit b of a size set: a small class below <see cref="SizeClasses.Count"/>, else the large bucket 2^(16 + b − Count).</summary>
    public static ulong BucketSize(int bit) =>
        bit < SizeClasses.Count ? SizeClasses.SizeOf(bit) : 1UL << (LargeBlocks.FirstBucketShift + bit - SizeClasses.Count);
}

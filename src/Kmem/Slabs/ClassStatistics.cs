// Slabs/ClassStatistics.cs — folds per-thread counts into per-bucket statistics (struct kmembuckets): small size classes
// and the power-of-two buckets of large blocks.
using Kmem.Caches;
using Kmem.Pages;

namespace Kmem.Slabs;

/// <summary>One bucket's row of vmstat -m.</summary>
internal readonly record struct BucketStats(ulong Size, int Bit, long InUse, long Free, long Requests, long HighWater);

internal static unsafe class ClassStatistics
{
    private static readonly long[] s_high = new long[64];

    /// <summary>Every bucket that has had a request, smallest first.</summary>
    public static List<BucketStats> Fold()
    {
        var rows = new List<BucketStats>();
        lock (ThreadCaches.Lock)
        {
            for (int c = 0; c < SizeClasses.Count; c++)
            {
                // Blocks in use = blocks carved − free blocks (in thread caches, in the depot and in DIAGNOSTIC's quarantine).
                long allocs = ThreadCaches.RetiredAllocs[c], free = ClassDepot.All[c].Cached + Checks.Quarantine.CountOf(c);
                foreach (nint tc in ThreadCaches.LiveUnderLock)
                {
                    ClassBin* bin = ThreadCaches.Bin((byte*)tc, c);
                    allocs += bin->Allocs;
                    free += bin->Count + bin->SpareCount;
                }
                long carved = ClassDepot.All[c].Carved;
                if (allocs != 0)
                    rows.Add(Row(SizeClasses.SizeOf(c), c, allocs, Math.Max(0, carved - free), carved));
            }
            for (int b = 0; b < LargeBlocks.Buckets; b++)
            {
                long allocs = Volatile.Read(ref LargeBlocks.BucketAllocs[b]);
                if (allocs != 0)
                {
                    long inUse = allocs - Volatile.Read(ref LargeBlocks.BucketFrees[b]);
                    rows.Add(Row(1UL << (LargeBlocks.FirstBucketShift + b), SizeClasses.Count + b, allocs, inUse, inUse));
                }
            }
        }
        return rows;
    }

    private static BucketStats Row(ulong size, int bit, long allocs, long inUse, long total)
    {
        // HighWater: the most blocks in use seen when statistics were read (Kmem never gives slab pages back, so the
        // kernel's free threshold has no meaning here).
        long high = Math.Max(s_high[bit], inUse);
        s_high[bit] = high;
        return new BucketStats(size, bit, inUse, Math.Max(0, total - inUse), allocs, high);
    }
}

// Pages/LargeBlocks.cs — blocks above the largest size class: a run of units per block, its pages committed from the
// OS on allocation and returned to the OS on free. The page map's head entry holds the block's size, type and site.
using Kmem.Slabs;

namespace Kmem.Pages;

internal static unsafe class LargeBlocks
{
    /// <summary>Large blocks are counted in power-of-two buckets from 64 KiB (as 4.4BSD counted them).</summary>
    public const int FirstBucketShift = 16;
    public const int Buckets = 64 - SizeClasses.Count;

    public static readonly long[] BucketAllocs = new long[Buckets];
    public static readonly long[] BucketFrees = new long[Buckets];

    /// <summary>Bucket of a large block of <paramref name="bytes"/> (page-rounded).</summary>
    public static int BucketOf(nuint bytes)
    {
        int shift = 64 - System.Numerics.BitOperations.LeadingZeroCount((ulong)bytes - 1);
        return Math.Clamp(shift - FirstBucketShift, 0, Buckets - 1);
    }

    /// <summary>Maps a block of <paramref name="bytes"/> (page-rounded); null when kmem_map or the OS has no room.</summary>
    public static byte* Alloc(nuint bytes, ushort typeIndex, uint site)
    {
        nuint units = (bytes + KmemMap.UnitMask) >> KmemMap.UnitShift;
        long first = KmemMap.AllocUnits((uint)units, bytes);
        if (first < 0)
            return null;
        uint head = (uint)first;
        PageMap.MarkRun(head, (uint)units, UnitKind.LargeHead, UnitKind.LargeTail, typeIndex, site, (uint)(bytes / (nuint)KmemMap.PageSize));
        Interlocked.Increment(ref BucketAllocs[BucketOf(bytes)]);
        return KmemMap.UnitAddress(head);
    }

    public static nuint SizeOf(UnitInfo* head) => (nuint)head->Pages * (nuint)KmemMap.PageSize;

    /// <summary>Unmaps a block whose head entry is <paramref name="head"/> (already validated by the caller).</summary>
    public static void Free(UnitInfo* head, uint unit)
    {
        uint units = head->Head;
        nuint bytes = SizeOf(head);
        PageMap.ReleaseRun(unit, units);
        Interlocked.Increment(ref BucketFrees[BucketOf(bytes)]);
        KmemMap.FreeUnits(unit, units, bytes);
    }
}

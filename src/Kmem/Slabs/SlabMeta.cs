// Slabs/SlabMeta.cs — per-object side tables, struct of arrays per slab, in a region parallel to kmem_map:
// one state byte, a 16-bit type index and a 32-bit allocation site per block (7 bytes). No per-object header.
using System.Runtime.CompilerServices;
using Kmem.Pages;
using Kmem.Platform;

namespace Kmem.Slabs;

internal enum BlockState : byte
{
    /// <summary>Not carved yet: never handed out.</summary>
    Uncarved = 0,
    Allocated = 1,
    Free = 2,
}

internal static unsafe class SlabMeta
{
    // Laid out for the densest class (16-byte blocks, 16384 per slab).
    private const int MaxBlocks = (int)(KmemMap.UnitSize / SizeClasses.MinSize);
    private const int StatesOffset = 0;
    private const int TypesOffset = MaxBlocks;                // ushort[MaxBlocks]
    private const int SitesOffset = TypesOffset + MaxBlocks * 2; // uint[MaxBlocks]
    public const int Stride = SitesOffset + MaxBlocks * 4;    // 112 KiB

    private static byte* s_region;
    private static IPageProvider s_pages = null!;

    public static void Start(uint unitCount, IPageProvider pages)
    {
        s_pages = pages;
        s_region = (byte*)pages.Reserve((nuint)unitCount * Stride);
        if (s_region == null)
            throw new OutOfMemoryException("Kmem: cannot reserve the slab side tables.");
    }

    /// <summary>Commits the side tables a slab of <paramref name="cls"/> needs; false when the OS refuses.</summary>
    public static bool CommitFor(uint unit, int cls)
    {
        uint n = SizeClasses.BlocksPerSlab(cls);
        byte* m = s_region + (nuint)unit * Stride;
        return CommitRange(m + StatesOffset, n) && CommitRange(m + TypesOffset, n * 2) && CommitRange(m + SitesOffset, n * 4);
    }

    private static bool CommitRange(byte* start, uint bytes)
    {
        nuint page = (nuint)KmemMap.PageSize;
        nuint len = (bytes + page - 1) & ~(page - 1);
        return s_pages.Commit((nint)start, len);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* Of(uint unit) => s_region + (nuint)unit * Stride;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref BlockState State(byte* meta, uint slot) => ref *(BlockState*)(meta + StatesOffset + slot);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref ushort Type(byte* meta, uint slot) => ref *(ushort*)(meta + TypesOffset + slot * 2);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref uint Site(byte* meta, uint slot) => ref *(uint*)(meta + SitesOffset + slot * 4);

    public static nint RegionStart => (nint)s_region;
}

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
    // The three arrays start at different offsets within a page, so that the entries of one block never share the low
    // 12 address bits (loads would wait on unrelated stores: 4K aliasing).
    private const int StatesOffset = 0x0C0;
    private const int TypesOffset = 0x5000 + 0x280;               // ushort[MaxBlocks]
    private const int SitesOffset = 0xE000 + 0x540;               // uint[MaxBlocks]
    public const int Stride = 0x1F000;                            // 124 KiB of address space, committed per slab

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
        // One state byte past the last block: the free path reads it for an address in a slab's unused tail.
        return CommitRange(m + StatesOffset, n + 1) && CommitRange(m + TypesOffset, n * 2) && CommitRange(m + SitesOffset, n * 4);
    }

    private static bool CommitRange(byte* start, uint bytes)
    {
        nuint page = (nuint)KmemMap.PageSize;
        nuint first = (nuint)start & ~(page - 1);
        nuint end = ((nuint)start + bytes + page - 1) & ~(page - 1);
        return s_pages.Commit((nint)first, end - first);
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

// Slabs/SlabMeta.cs — per-object side tables, struct of arrays per slab, in a region parallel to kmem_map:
// a 16-bit owner (the type index; 0 = not allocated) and a 32-bit allocation site per block (6 bytes). No header.
using System.Runtime.CompilerServices;
using Kmem.Pages;
using Kmem.Platform;

namespace Kmem.Slabs;

internal static unsafe class SlabMeta
{
    // Laid out for the densest class (16-byte blocks, 16384 per slab).
    private const int MaxBlocks = (int)(KmemMap.UnitSize / SizeClasses.MinSize);
    // The arrays start at different offsets within a page, so that the entries of one block never share the low
    // 12 address bits (loads would wait on unrelated stores: 4K aliasing).
    private const int OwnersOffset = 0x0C0;                       // ushort[MaxBlocks]
    private const int SitesOffset = 0x9000 + 0x540;               // uint[MaxBlocks]
    public const int Stride = 0x1A000;                            // 104 KiB of address space, committed per slab

    /// <summary>Side-table bytes per block.</summary>
    public const int BytesPerBlock = sizeof(ushort) + sizeof(uint);

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
        // One owner entry past the last block: the free path reads it for an address in a slab's unused tail.
        return CommitRange(m + OwnersOffset, (n + 1) * 2) && CommitRange(m + SitesOffset, n * 4);
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

    /// <summary>The type index that owns the block; 0 while the block is free or not carved yet.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref ushort Owner(byte* meta, uint slot) => ref *(ushort*)(meta + OwnersOffset + slot * 2);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref uint Site(byte* meta, uint slot) => ref *(uint*)(meta + SitesOffset + slot * 4);

    public static nint RegionStart => (nint)s_region;
}

// Slabs/SlabMeta.cs — per-object side tables, struct of arrays per slab, in a region parallel to kmem_map. Per block:
// a 16-bit owner (the type index; 0 = not allocated), a 32-bit allocation context (site and thread), and for the leak
// detector a 32-bit birth stamp, a 32-bit checksum and a state byte: 15 bytes, plus four bits the leak scanner marks
// with (gray, white, white again, pending), committed with the rest of the slab's stride. No header.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Kmem.Pages;
using Kmem.Platform;

namespace Kmem.Slabs;

internal static unsafe class SlabMeta
{
    // Laid out for the densest class (16-byte blocks, 16384 per slab).
    private const int MaxBlocks = (int)(KmemMap.UnitSize / SizeClasses.MinSize);
    // Every array starts on a page, so a slab with fewer blocks touches whole pages of each (a 64-byte slab's 4096
    // blocks: owners 2 pages, contexts 4, stamps 4, state 1). So that the entries of one block seldom share their low
    // 12 address bits (a load would wait on an unrelated store: 4K aliasing), all arrays but the owners are indexed by
    // the slot with a few bits flipped: for slot 0, owner at page offset 0, checksum 64, context 128, stamp 192, state
    // 256 (104 of the 16384 slots still have two entries overlapping modulo 4 KiB, as with in-page start offsets). A
    // flip keeps runs of 64 slots from a multiple of 64 contiguous (the scan's vector reads of the state bytes). A page
    // after the owners, never written, holds the entry after a full slab's last block (HeapVerifier checks that entry
    // is 0 in every slab).
    private const int OwnersOffset = 0x00000;                     // ushort[MaxBlocks], then a page of zeros
    private const int SitesOffset = 0x09000;                      // uint[MaxBlocks]: allocation context
    private const int StampsOffset = 0x19000;                     // uint[MaxBlocks]
    private const int CrcsOffset = 0x29000;                       // uint[MaxBlocks]
    private const int LeakOffset = 0x39000;                       // byte[MaxBlocks]
    private const int BitmapsOffset = 0x3D000;                    // ulong[ScanBitsPerBlock][MaxBlocks / 64]: the scanner's bitmaps
    private const uint CrcFlip = 16, SiteFlip = 32, StampFlip = 48, LeakFlip = 256;
    private const int BitmapBytes = MaxBlocks / 8;
    private const uint BitmapsFit = Stride - BitmapsOffset - ScanBitsPerBlock * BitmapBytes; // (does not compile if not)
    public const int Stride = 0x3F000;                            // 252 KiB of address space, committed per slab

    /// <summary>Side-table bytes per block.</summary>
    public const int BytesPerBlock = sizeof(ushort) + 3 * sizeof(uint) + sizeof(byte);

    /// <summary>The leak scanner's bits per block (gray, white, white again, pending).</summary>
    public const int ScanBitsPerBlock = 4;

    private static byte* s_region;
    private static IPageProvider s_pages = null!;

    public static void Start(uint unitCount, IPageProvider pages)
    {
        s_pages = pages;
        s_region = (byte*)pages.Reserve((nuint)unitCount * Stride);
        if (s_region == null)
            throw new OutOfMemoryException("Kmem: cannot reserve the slab side tables.");
        OwnRegions.Add(s_region, (nuint)unitCount * Stride);
    }

    /// <summary>Commits the side tables of a new slab; false when the OS refuses.</summary>
    public static bool CommitFor(uint unit)
    {
        if (FaultInjection.FailPageRequest())
            return false; // the caller gives the unit back and fails as for no pages
        // The whole stride, scanner bitmaps included, in one call: committing each column (and later the bitmaps) on its
        // own split the reservation into about ten kernel mappings per slab, and Linux allows 65,530 per process, so a
        // few GiB of small blocks would have run out of mappings. Whole strides of neighbouring slabs merge into one
        // mapping. Pages nobody touches cost no memory (the crc column and the bitmaps until a scan, the columns past a
        // large class's last block), so RSS stays what the columns in use need. The commit charge is the whole stride
        // (252 KiB a slab): free under Linux's default overcommit (the reservation is MAP_NORESERVE), counted under strict
        // overcommit and by Windows.
        return s_pages.Commit((nint)(s_region + (nuint)unit * Stride), Stride);
    }

    /// <summary>One of the leak scanner's bitmaps (0 gray, 1 white, 2 white again, 3 pending): a bit per block.</summary>
    public static ulong* Bitmap(byte* meta, int which) => (ulong*)(meta + BitmapsOffset + which * BitmapBytes);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* Of(uint unit) => s_region + (nuint)unit * Stride;

    /// <summary>The type index that owns the block; 0 while the block is free or not carved yet.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref ushort Owner(byte* meta, uint slot) => ref *(ushort*)(meta + OwnersOffset + slot * 2);

    /// <summary>The allocation context (<see cref="Diagnostics.AllocContexts"/>: site and thread).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref uint Site(byte* meta, uint slot) => ref *(uint*)(meta + SitesOffset + (slot ^ SiteFlip) * 4);

    /// <summary>The allocating thread's sequence number at allocation (birth order and age for the leak detector).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref uint Stamp(byte* meta, uint slot) => ref *(uint*)(meta + StampsOffset + (slot ^ StampFlip) * 4);

    /// <summary>The leak detector's checksum of the contents.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref uint Crc(byte* meta, uint slot) => ref *(uint*)(meta + CrcsOffset + (slot ^ CrcFlip) * 4);

    /// <summary>The leak detector's state byte (<see cref="Leak.LeakState"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref byte Leak(byte* meta, uint slot) => ref *(meta + LeakOffset + (slot ^ LeakFlip));

    /// <summary>Bit i set when slot <paramref name="first"/> + i holds a block (its owner is not 0), for 64 slots from
    /// <paramref name="first"/> (a multiple of 64; the columns have room for whole words).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // the scan's loops over all slots: a call each costs more than the loads
    public static ulong OwnedMask(byte* meta, uint first)
    {
        ushort* o = (ushort*)(meta + OwnersOffset) + first;
        ulong free = Vector256.Equals(Vector256.Load(o), Vector256<ushort>.Zero).ExtractMostSignificantBits()
            | (ulong)Vector256.Equals(Vector256.Load(o + 16), Vector256<ushort>.Zero).ExtractMostSignificantBits() << 16
            | (ulong)Vector256.Equals(Vector256.Load(o + 32), Vector256<ushort>.Zero).ExtractMostSignificantBits() << 32
            | (ulong)Vector256.Equals(Vector256.Load(o + 48), Vector256<ushort>.Zero).ExtractMostSignificantBits() << 48;
        return ~free;
    }

    /// <summary>Bit i set when the state byte of slot <paramref name="first"/> + i, masked with <paramref name="mask"/>,
    /// equals <paramref name="value"/> (<see cref="Leak.LeakState"/> bits), for 64 slots as <see cref="OwnedMask"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong StateMask(byte* meta, uint first, byte mask, byte value)
    {
        byte* s = meta + LeakOffset + (first ^ LeakFlip); // first is a multiple of 64: the 64 bytes are contiguous
        Vector256<byte> m = Vector256.Create(mask), v = Vector256.Create(value);
        return Vector256.Equals(Vector256.Load(s) & m, v).ExtractMostSignificantBits()
            | (ulong)Vector256.Equals(Vector256.Load(s + 32) & m, v).ExtractMostSignificantBits() << 32;
    }

    public static nint RegionStart => (nint)s_region;
}

// Pages/PageMap.cs — the two-level page map (4.4BSD's kmemusage): from any address to what owns its unit, in O(1).
// Level 1 has one entry per 64 MiB chunk of kmem_map; level 2, made when a chunk is first used, one UnitInfo per 256 KiB unit.
// Beside it, a flat byte per unit names the size class of a slab unit (class + 1; 0 = not a slab): the fast paths read
// that one byte instead of walking both levels (slab units never change kind, so the byte is written once).
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kmem.Platform;

namespace Kmem.Pages;

internal enum UnitKind : byte
{
    /// <summary>Never used by a block.</summary>
    Unused = 0,
    /// <summary>A slab of one size class.</summary>
    Slab = 1,
    /// <summary>First unit of a large block.</summary>
    LargeHead = 2,
    /// <summary>Later unit of a large block (<see cref="UnitInfo.Head"/> names the first).</summary>
    LargeTail = 3,
    /// <summary>Held a large block that was freed; not reused yet.</summary>
    Released = 4,
    /// <summary>One CPU's unit of a per-CPU chunk (<see cref="UnitInfo.Head"/> names the chunk's first unit).</summary>
    PerCpu = 5,
    /// <summary>First unit of a vmalloc area (guard page, pages, guard page).</summary>
    VmallocHead = 6,
    /// <summary>Later unit of a vmalloc area (<see cref="UnitInfo.Head"/> names the first).</summary>
    VmallocTail = 7,
}

/// <summary>What one 256 KiB unit of kmem_map holds. Sixteen bytes; no addresses.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct UnitInfo
{
    public UnitKind Kind;
    public byte Class;        // slab: size class
    public ushort TypeIndex;  // large head: owning type
    public uint Site;         // large head: allocation site
    public uint Pages;        // large/vmalloc head: pages in the block
    public uint Head;         // large/vmalloc head: units in the run; tail or per-CPU unit: the first unit
}

internal static unsafe class PageMap
{
    private static UnitInfo** s_level1;
    private static byte* s_level2Region;
    private static byte* s_slabClass;
    private static uint s_chunks;
    private static IPageProvider s_pages = null!;
    private static readonly object s_lock = new();

    public static void Start(uint unitCount, IPageProvider pages)
    {
        s_pages = pages;
        s_chunks = (uint)((unitCount + KmemMap.UnitsPerChunk - 1) / KmemMap.UnitsPerChunk);
        nuint l1Bytes = RoundPage((nuint)s_chunks * (nuint)sizeof(nint));
        nuint l2Bytes = (nuint)s_chunks * ChunkTableBytes;
        s_level1 = (UnitInfo**)pages.Reserve(l1Bytes);
        s_level2Region = (byte*)pages.Reserve(l2Bytes);
        nuint classBytes = RoundPage(unitCount);
        s_slabClass = (byte*)pages.Reserve(classBytes);
        if (s_level1 == null || s_level2Region == null || s_slabClass == null || !pages.Commit((nint)s_level1, l1Bytes)
            || !pages.Commit((nint)s_slabClass, classBytes))
            throw new OutOfMemoryException("Kmem: cannot map the page map.");
        OwnRegions.Add(s_level1, l1Bytes);
        OwnRegions.Add(s_level2Region, l2Bytes);
        OwnRegions.Add(s_slabClass, classBytes);
    }

    private static nuint ChunkTableBytes => RoundPage((nuint)(KmemMap.UnitsPerChunk * sizeof(UnitInfo)));

    private static nuint RoundPage(nuint n) => (n + (nuint)KmemMap.PageSize - 1) & ~((nuint)KmemMap.PageSize - 1);

    /// <summary>The entry for the unit holding <paramref name="p"/>, or null when the address is outside every used chunk.</summary>
    public static UnitInfo* Lookup(void* p)
    {
        nuint off = (nuint)((byte*)p - KmemMap.Base);
        return off < KmemMap.Size ? LookupOffset(off) : null;
    }

    /// <summary>The entry for the unit at kmem_map offset <paramref name="off"/> (already known to be inside the map).</summary>
    public static UnitInfo* LookupOffset(nuint off)
    {
        UnitInfo* l2 = s_level1[off >> KmemMap.ChunkShift];
        return l2 == null ? null : l2 + ((off >> KmemMap.UnitShift) & (KmemMap.UnitsPerChunk - 1));
    }

    /// <summary>The size class + 1 of the slab at kmem_map offset <paramref name="off"/> (inside the map); 0 when the unit
    /// is not a slab.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int SlabClassPlusOne(nuint off) => s_slabClass[off >> KmemMap.UnitShift];

    /// <summary>The class of the slab <paramref name="unit"/> is, from the same flat table; −1 when it is not a slab.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // the leak scan's tracing loop: as SlabClassPlusOne
    public static int SlabClassOfUnit(uint unit) => s_slabClass[unit] - 1;

    /// <summary>Publishes <paramref name="unit"/> as a slab of <paramref name="cls"/> in the flat table (once; after its
    /// entry says Slab).</summary>
    public static void MarkSlab(uint unit, int cls) => Volatile.Write(ref s_slabClass[unit], (byte)(cls + 1));

    /// <summary>Marks a run of units: the first with <paramref name="head"/>, the others with <paramref name="tail"/>
    /// pointing back at the first. The first entry's other fields are the caller's to fill before publishing.</summary>
    public static UnitInfo* MarkRun(uint first, uint count, UnitKind head, UnitKind tail, ushort typeIndex, uint site, uint pages)
    {
        for (uint u = 1; u < count; u++)
        {
            UnitInfo* t = Entry(first + u);
            t->Head = first;
            t->TypeIndex = 0;
            t->Site = 0;
            t->Pages = 0;
            Volatile.Write(ref *(byte*)&t->Kind, (byte)tail);
        }
        UnitInfo* e = Entry(first);
        e->TypeIndex = typeIndex;
        e->Site = site;
        e->Pages = pages;
        e->Head = head == tail ? first : count;
        Volatile.Write(ref *(byte*)&e->Kind, (byte)head);
        return e;
    }

    /// <summary>Marks a run of units as given back.</summary>
    public static void ReleaseRun(uint first, uint count)
    {
        for (uint u = 0; u < count; u++)
            Volatile.Write(ref *(byte*)&Entry(first + u)->Kind, (byte)UnitKind.Released);
    }

    /// <summary>Makes the tables of every chunk a run of units touches; false when a page request is refused (then
    /// nothing is marked, and the caller gives the run back). Units handed out always have their table.</summary>
    public static bool EnsureTables(uint first, uint count)
    {
        uint last = (first + count - 1) / (uint)KmemMap.UnitsPerChunk;
        for (uint chunk = first / (uint)KmemMap.UnitsPerChunk; chunk <= last; chunk++)
        {
            if (Volatile.Read(ref *(nint*)&s_level1[chunk]) != 0)
                continue;
            lock (s_lock)
            {
                if (s_level1[chunk] != null)
                    continue;
                byte* table = s_level2Region + chunk * ChunkTableBytes;
                if (FaultInjection.FailPageRequest() || !s_pages.Commit((nint)table, ChunkTableBytes))
                    return false;
                Volatile.Write(ref *(nint*)&s_level1[chunk], (nint)table);
            }
        }
        return true;
    }

    /// <summary>The entry for <paramref name="unit"/>. Units handed out already have their chunk's table
    /// (<see cref="EnsureTables"/>, in <see cref="KmemMap.AllocUnits"/>); for any other unit the table is made here.</summary>
    public static UnitInfo* Entry(uint unit)
    {
        uint chunk = unit / (uint)KmemMap.UnitsPerChunk;
        UnitInfo* l2 = s_level1[chunk];
        if (l2 == null)
        {
            if (!EnsureTables(unit, 1))
                throw new OutOfMemoryException("Kmem: cannot map a page-map table.");
            l2 = s_level1[chunk];
        }
        return l2 + (unit % (uint)KmemMap.UnitsPerChunk);
    }
}

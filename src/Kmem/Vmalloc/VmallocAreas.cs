// Vmalloc/VmallocAreas.cs — vmalloc: page-granular areas in kmem_map with an inaccessible guard page before and after.
// Pages are committed on allocation (the OS supplies them lazily) and returned on Vfree. Each area's descriptor is found
// from its first unit; the table keeps kmem_map offsets of the descriptors, never their addresses.
using Kmem.Pages;
using Kmem.Slabs;

namespace Kmem;

internal static unsafe class VmallocAreas
{
    private static readonly object s_lock = new();
    private static readonly Dictionary<uint, nuint> s_descriptors = new(); // first unit → encoded descriptor

    public static nuint Page => (nuint)KmemMap.PageSize;

    /// <summary>Maps an area of <paramref name="pages"/> pages between two guard pages; returns its first unit or -1.</summary>
    public static long MapArea(nuint pages, ushort typeIndex, uint site)
    {
        nuint total = (pages + 2) * Page;
        uint units = (uint)((total + KmemMap.UnitMask) >> KmemMap.UnitShift);
        long first = KmemMap.AllocUnits(units, pages * Page, commitOffset: Page);
        if (first < 0)
            return -1;
        PageMap.MarkRun((uint)first, units, UnitKind.VmallocHead, UnitKind.VmallocTail, typeIndex, site, (uint)pages);
        return first;
    }

    public static byte* AreaAddress(uint firstUnit) => KmemMap.UnitAddress(firstUnit) + Page;

    public static void Publish(uint firstUnit, VmStruct* desc)
    {
        lock (s_lock)
            s_descriptors[firstUnit] = BlockLink.Encode((byte*)desc);
    }

    /// <summary>The descriptor of the area whose first byte is <paramref name="addr"/>, taken out of the table; null if none.</summary>
    public static VmStruct* Unpublish(byte* addr, out uint firstUnit)
    {
        firstUnit = 0;
        UnitInfo* e = PageMap.Lookup(addr);
        if (e == null || e->Kind != UnitKind.VmallocHead)
            return null;
        firstUnit = KmemMap.UnitOf(addr);
        if (addr != AreaAddress(firstUnit))
            return null;
        lock (s_lock)
            return s_descriptors.Remove(firstUnit, out nuint link) ? (VmStruct*)BlockLink.Decode(link) : null;
    }

    /// <summary>A copy of the descriptor table (first unit → encoded descriptor), for the heap verifier.</summary>
    public static KeyValuePair<uint, nuint>[] Snapshot()
    {
        lock (s_lock)
            return s_descriptors.ToArray();
    }

    public static void UnmapArea(uint firstUnit, nuint pages)
    {
        UnitInfo* e = PageMap.Entry(firstUnit);
        uint units = e->Head;
        PageMap.ReleaseRun(firstUnit, units);
        KmemMap.FreeUnits(firstUnit, units, pages * Page, commitOffset: Page);
    }

    /// <summary>The descriptor of the area containing <paramref name="addr"/> (guard pages excluded), or null.</summary>
    public static VmStruct* Find(byte* addr)
    {
        UnitInfo* e = PageMap.Lookup(addr);
        if (e == null || (e->Kind != UnitKind.VmallocHead && e->Kind != UnitKind.VmallocTail))
            return null;
        uint first = e->Kind == UnitKind.VmallocHead ? KmemMap.UnitOf(addr) : e->Head;
        VmStruct* d;
        lock (s_lock)
        {
            if (!s_descriptors.TryGetValue(first, out nuint link))
                return null;
            d = (VmStruct*)BlockLink.Decode(link);
        }
        return addr >= (byte*)d->Addr && addr < (byte*)d->Addr + d->Size ? d : null;
    }
}

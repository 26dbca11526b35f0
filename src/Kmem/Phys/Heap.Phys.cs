// Phys/Heap.Phys.cs — the physical-address part of the allocator's API: phys_to_virt and virt_to_phys.
namespace Kmem;

public static unsafe partial class Heap
{
    /// <summary>The current virtual address of physical address <paramref name="phys"/>, or null when its region is not mapped (or there is none).</summary>
    public static void* PhysToVirt(ulong phys)
    {
        PhysRegion? r = PhysRegion.Containing(phys);
        byte* v = r is null ? null : (byte*)r.VirtualAddress;
        return v == null ? null : v + (nuint)(phys - r!.Base);
    }

    /// <summary>The physical address of <paramref name="addr"/> inside a mapped region; 0 when it is not physical memory.</summary>
    public static ulong VirtToPhys(void* addr)
    {
        PhysRegion? r = PhysRegion.Mapping(addr);
        byte* v = r is null ? null : (byte*)r.VirtualAddress; // read once: the region may be remapped meanwhile
        return v == null || (byte*)addr < v || (nuint)((byte*)addr - v) >= r!.Size ? 0 : r.Base + (ulong)((byte*)addr - v);
    }
}

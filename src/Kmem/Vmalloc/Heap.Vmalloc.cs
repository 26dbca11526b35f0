// Vmalloc/Heap.Vmalloc.cs — the vmalloc part of the allocator's API: Vmalloc, Vfree, FindVmArea.
using System.Runtime.CompilerServices;
using Kmem.Caches;
using Kmem.Diagnostics;
using Kmem.Leak;
using Kmem.Pages;
using Kmem.Types;

namespace Kmem;

public static unsafe partial class Heap
{
    private static readonly Lazy<MallocType> s_vmAreaType = new(() =>
    {
        var type = new MallocType("vmarea", "vmalloc area descriptors (vm_struct)") { Internal = true };
        Checks.CheckSwitch.Refresh(type);
        return type;
    });

    /// <summary>The type vmalloc descriptors (<see cref="VmArea"/>) are allocated under: "vmarea".</summary>
    public static MallocType VmAreaType => s_vmAreaType.Value;

    /// <summary>
    /// vmalloc: <paramref name="size"/> bytes of virtually contiguous, page-granular memory with an inaccessible guard
    /// page before and after (touching one kills the process). Accounted to <paramref name="type"/> in whole pages; the
    /// descriptor goes to <see cref="VmAreaType"/>. Returns null only when kmem_map or the OS has no room.
    /// </summary>
    public static void* Vmalloc(nuint size, MallocType type,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        CheckMalloc(type, MallocFlags.WaitOk);
        if (size == 0)
            throw new ArgumentOutOfRangeException(nameof(size), size, "vmalloc needs at least one byte");
        byte* tc = ThreadCaches.Current();
        nuint page = VmallocAreas.Page;
        if (size > KmemMap.Size - 2 * page)
            return null;
        nuint pages = (size + page - 1) / page;
        long bytes = (long)(pages * page);
        uint site = ThreadCaches.Context(tc, CallSites.Intern(member, file, line));
        VmStruct* desc = (VmStruct*)Malloc((nuint)sizeof(VmStruct), VmAreaType, MallocFlags.NoWait, member, file, line);
        if (desc == null)
            return null;
        TypeSlot* ts = ThreadCaches.Slot(tc, type.Index);
        TypeAccounting.Take(type, ts, bytes, MallocFlags.WaitOk);
        long first = VmallocAreas.MapArea(pages, (ushort)type.Index, site);
        if (first < 0)
        {
            TypeAccounting.Refund(type, ts, bytes);
            Free(desc, VmAreaType);
            return null;
        }
        byte* addr = VmallocAreas.AreaAddress((uint)first);
        desc->Addr = addr;
        desc->Size = pages * page;
        desc->RequestedSize = size;
        desc->TypeIndex = type.Index;
        desc->Site = site;
        VmallocAreas.Publish((uint)first, desc);
        // kmemleak's vmalloc rule: the area needs two references, one of them the descriptor's Addr. The descriptor is
        // found through Kmem's own tables (which hold no pointers), so it is a root: always scanned, never reported.
        Kmemleak.MarkKmemBlock(desc, LeakState.Root);
        LeakTracking.AddKmem(RecordKind.Vmalloc, addr, pages * page, 2, (ushort)type.Index, site);
        ts->Allocs++;
        return addr;
    }

    /// <summary>vfree: unmaps an area returned by <see cref="Vmalloc"/> and frees its descriptor. Anything else panics.</summary>
    public static void Vfree(void* addr,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if (addr == null)
            Panic.Raise("vfree: null addr");
        VmStruct* desc = VmallocAreas.Unpublish((byte*)addr, out uint first);
        if (desc == null)
            Panic.Raise($"vfree: addr {Panic.Addr(addr)} is not the start of a vmalloc area (already freed, interior, or not vmalloc'd)");
        MallocType type = TypeRegistry.ByIndex(desc->TypeIndex)!;
        nuint pages = desc->Size / VmallocAreas.Page;
        LeakTracking.RemoveKmem(addr);
        VmallocAreas.UnmapArea(first, pages);
        Free(desc, VmAreaType, member, file, line);
        TypeAccounting.Give(type, ThreadCaches.Slot(ThreadCaches.Current(), type.Index), (long)(pages * VmallocAreas.Page));
    }

    /// <summary>The vmalloc area containing <paramref name="addr"/> (first to last byte; not its guard pages), or null.</summary>
    public static VmArea? FindVmArea(void* addr)
    {
        VmStruct* d = VmallocAreas.Find((byte*)addr);
        return d == null ? null : new VmArea(d);
    }
}

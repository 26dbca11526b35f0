// Checks/GuardPages.cs — guard-page mode (MALLOC_DEBUG, memguard(9)): blocks of a chosen type or size range each get
// their own pages in a region apart from kmem_map, ending at the end of the last page, with an inaccessible page
// after them. Free makes the pages inaccessible again and the slot waits in a FIFO before reuse, so an overflow or a
// use after free faults at once. A slot's state is found from the address (slot = offset / stride): no header; the
// side arrays hold no addresses.
using Kmem.Caches;
using Kmem.Diagnostics;
using Kmem.Leak;
using Kmem.Platform;
using Kmem.Types;

namespace Kmem.Checks;

internal static unsafe class GuardPages
{
    /// <summary>Largest guarded block: 15 pages of 4 KiB (a slot is 16 pages, the last one never accessible).</summary>
    public const nuint MaxBlockSize = 15 * 4096;
    private const int PagesPerSlot = 16;
    private const int SlotCount = 16384;
    /// <summary>Freed slots wait this long (in frees) before reuse, when fresh slots remain (MALLOC_DEBUG_CHUNKS is 16).</summary>
    private const int DelayedSlots = 256;

    private const byte Free = 0, Live = 1, Freed = 2;

    private static readonly object s_lock = new();
    private static byte* s_base;
    private static nuint s_stride;
    private static int s_fresh;                                 // slots never used: [s_fresh, SlotCount)
    private static readonly Queue<int> s_freed = new();        // freed slots, oldest first
    private static readonly byte[] s_state = new byte[SlotCount];
    private static readonly nuint[] s_size = new nuint[SlotCount];
    private static readonly ushort[] s_type = new ushort[SlotCount];
    private static readonly uint[] s_site = new uint[SlotCount];

    /// <summary>Whether <paramref name="p"/> lies in the guard region (then only this class may free it).</summary>
    public static bool Contains(void* p) => s_base != null && (nuint)((byte*)p - s_base) < s_stride * SlotCount;

    public static int LiveCount
    {
        get
        {
            lock (s_lock)
                return s_fresh - s_freed.Count;
        }
    }

    private static nuint PageSize => (nuint)OsPages.Provider.PageSize;

    /// <summary>Pages a block of <paramref name="size"/> bytes occupies.</summary>
    private static nuint PagesFor(nuint size) => (size + PageSize - 1) / PageSize;

    private static byte* UserAddress(int slot, nuint size) =>
        s_base + (nuint)slot * s_stride + (PagesPerSlot - 1) * PageSize - ((size + 15) & ~(nuint)15);

    /// <summary>A guarded block, or null with <paramref name="served"/> false when no slot or page could be had (the
    /// caller falls back to the normal allocator) or true when the type's limit refused it.</summary>
    public static void* Alloc(nuint size, MallocType type, MallocFlags flags, uint site, out bool served)
    {
        served = false;
        byte* tc = ThreadCaches.Current();
        long bytes = (long)(PagesFor(size) * PageSize);
        TypeSlot* ts = ThreadCaches.Slot(tc, type.Index);
        if (!TypeAccounting.Take(type, ts, bytes, flags))
        {
            served = true;
            return null;
        }
        byte* p = null;
        lock (s_lock)
        {
            if (s_base == null)
                Reserve();
            int slot = s_base == null ? -1
                : s_freed.Count > DelayedSlots || (s_fresh == SlotCount && s_freed.Count > 0) ? s_freed.Dequeue()
                : s_fresh < SlotCount ? s_fresh++ : -1;
            if (slot >= 0)
            {
                nuint pages = PagesFor(size);
                byte* first = s_base + (nuint)slot * s_stride + (PagesPerSlot - 1 - pages) * PageSize;
                if (OsPages.Provider.Commit((nint)first, pages * PageSize))
                {
                    s_state[slot] = Live;
                    s_size[slot] = size;
                    s_type[slot] = (ushort)type.Index;
                    s_site[slot] = site;
                    p = UserAddress(slot, size);
                }
                else
                {
                    s_state[slot] = Freed;
                    s_freed.Enqueue(slot);
                }
            }
        }
        if (p == null)
        {
            TypeAccounting.Refund(type, ts, bytes);
            return null;
        }
        served = true;
        ts->Allocs++;
        if (LeakTracking.Enabled)
        {
            (uint thread, uint stamp) = LeakTracking.Birth(tc);
            LeakTracking.Add(new LeakRecord
            {
                Kind = RecordKind.Foreign, Key = ~(nuint)p, Size = size, TypeIndex = (ushort)type.Index,
                Context = ThreadCaches.Context(tc, site), Thread = thread, Stamp = stamp,
            });
        }
        return p;
    }

    /// <summary>The request size of a live guarded block, after the same checks as <see cref="Release"/>.</summary>
    public static nuint SizeOf(void* p, MallocType type, string op)
    {
        lock (s_lock)
            return s_size[Validate(p, type, op)];
    }

    /// <summary>Frees a guarded block: its pages become inaccessible and its slot waits before reuse.</summary>
    public static void Release(void* p, MallocType type, string op)
    {
        nuint size;
        lock (s_lock)
        {
            int slot = Validate(p, type, op);
            size = s_size[slot];
            nuint pages = PagesFor(size);
            OsPages.Provider.Decommit((nint)(s_base + (nuint)slot * s_stride + (PagesPerSlot - 1 - pages) * PageSize), pages * PageSize);
            s_state[slot] = Freed;
            s_freed.Enqueue(slot);
        }
        LeakTracking.Remove(RecordKind.Foreign, ~(nuint)p, out _);
        byte* tc = ThreadCaches.Current();
        TypeAccounting.Give(type, ThreadCaches.Slot(tc, type.Index), (long)(PagesFor(size) * PageSize));
    }

    // Under s_lock: the slot of a live block that starts at p and belongs to type, or a panic with the reason.
    private static int Validate(void* p, MallocType type, string op)
    {
        int slot = (int)((nuint)((byte*)p - s_base) / s_stride);
        if (s_state[slot] != Live)
        {
            if (s_state[slot] == Freed && p == UserAddress(slot, s_size[slot]))
            {
                KmemDiagnostics.Publish(KmemMessageKind.Warning, $"multiply freed item {Panic.Addr(p)}"
                    + $"\n  size {s_size[slot]}, type {TypeRegistry.ByIndex(s_type[slot])?.ShortDesc ?? "?"}, last allocated at {CallSites.Describe(s_site[slot])}");
                Heap.PrintLog(p);
                Panic.Raise($"{op}: duplicated free");
            }
            Panic.Raise($"{op}: addr {Panic.Addr(p)} was never allocated by malloc");
        }
        if (p != UserAddress(slot, s_size[slot]))
            Panic.Raise($"{op}: unaligned addr {Panic.Addr(p)}, size {s_size[slot]}, type {type.ShortDesc}, mask 15");
        if (s_type[slot] != type.Index)
            Panic.Raise($"{op}: addr {Panic.Addr(p)} belongs to type {TypeRegistry.ByIndex(s_type[slot])?.ShortDesc ?? "?"}, not {type.ShortDesc}");
        return slot;
    }

    private static void Reserve()
    {
        IPageProvider pages = OsPages.Provider;
        s_stride = PagesPerSlot * PageSize;
        nint p = pages.Reserve(s_stride * SlotCount);
        if (p == 0)
            return;
        Pages.OwnRegions.Add((void*)p, s_stride * SlotCount);
        s_base = (byte*)p;
    }
}

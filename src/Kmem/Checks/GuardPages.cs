// Checks/GuardPages.cs — guard-page mode (MALLOC_DEBUG, memguard(9)): blocks of a chosen type or size range each get
// their own pages in a region apart from kmem_map, ending at the end of the last page, with an inaccessible page
// after them. Free makes the pages inaccessible again and the slot waits in a FIFO before reuse, so an overflow or a
// use after free faults at once. The bytes between the block and its pages' edges (the size is rounded up to 16 for
// alignment, and the first page starts before the block) are filled with the redzone pattern and checked at free.
// A slot's state is found from the address (slot = offset / stride): no header; the side arrays hold no addresses and
// the region's base is kept complemented.
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
    private static nuint s_baseComplement = ~(nuint)0; // ~base: the region holds blocks, so no static holds its address
    private static nuint s_stride;
    private static int s_fresh;                                 // slots never used: [s_fresh, SlotCount)
    private static readonly Queue<int> s_freed = new();        // freed slots, oldest first
    private static readonly byte[] s_state = new byte[SlotCount];
    private static readonly nuint[] s_size = new nuint[SlotCount];
    private static readonly ushort[] s_type = new ushort[SlotCount];
    private static readonly uint[] s_site = new uint[SlotCount];

    private static byte* Base => (byte*)~Volatile.Read(ref s_baseComplement);

    /// <summary>Whether <paramref name="p"/> lies in the guard region (then only this class may free it).</summary>
    public static bool Contains(void* p) => s_baseComplement != ~(nuint)0 && (nuint)((byte*)p - Base) < s_stride * SlotCount;

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
        Base + (nuint)slot * s_stride + (PagesPerSlot - 1) * PageSize - ((size + 15) & ~(nuint)15);

    private static byte* FirstPage(int slot, nuint size) => Base + (nuint)slot * s_stride + (PagesPerSlot - 1 - PagesFor(size)) * PageSize;

    private static byte* PagesEnd(int slot) => Base + (nuint)slot * s_stride + (PagesPerSlot - 1) * PageSize;

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
            if (s_baseComplement == ~(nuint)0)
                Reserve();
            int slot = s_baseComplement == ~(nuint)0 ? -1
                : s_freed.Count > DelayedSlots || (s_fresh == SlotCount && s_freed.Count > 0) ? s_freed.Dequeue()
                : s_fresh < SlotCount ? s_fresh++ : -1;
            if (slot >= 0)
            {
                nuint pages = PagesFor(size);
                byte* first = FirstPage(slot, size);
                if (!Pages.FaultInjection.FailPageRequest() && OsPages.Provider.Commit((nint)first, pages * PageSize))
                {
                    s_state[slot] = Live;
                    s_size[slot] = size;
                    s_type[slot] = (ushort)type.Index;
                    s_site[slot] = site;
                    p = UserAddress(slot, size);
                    // The slack on both sides holds the redzone pattern (fresh pages are zero: M_ZERO holds).
                    new Span<byte>(first, (int)(p - first)).Fill(Redzones.Pattern);
                    new Span<byte>(p + size, (int)(PagesEnd(slot) - (p + size))).Fill(Redzones.Pattern);
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
                Kind = RecordKind.Foreign, Guarded = true, Key = ~(nuint)p, Size = size, TypeIndex = (ushort)type.Index,
                Context = ThreadCaches.Context(tc, site), Thread = thread, Stamp = stamp,
            });
        }
        return p;
    }

    /// <summary>The request size of a live guarded block, after the same checks as <see cref="Release"/> (and its slack
    /// verified, as a free would).</summary>
    public static nuint SizeOf(void* p, MallocType type, string op) => s_size[CheckedSlot(p, type, op, take: false)];

    // The slot of the live block at p, its slack verified; with take, also claimed for freeing (a racing free of the
    // same block loses the claim). Panics with the reason otherwise.
    private static int CheckedSlot(void* p, MallocType type, string op, bool take)
    {
        (int slot, string? problem) = Validate(p, type, op, take: false);
        if (problem is not null)
            Fail(p, op, slot, problem, type);
        CheckSlack(slot, (byte*)p, s_size[slot], type);
        if (take && Validate(p, type, op, take: true).Problem is { } lost)
            Fail(p, op, slot, lost, type);
        return slot;
    }

    /// <summary>Frees a guarded block: its slack is verified, its pages become inaccessible (after its leak record is
    /// gone, under the unmap gate, so no scan reads them) and its slot waits before reuse.</summary>
    public static void Release(void* p, MallocType type, string op)
    {
        int slot = CheckedSlot(p, type, op, take: true);
        nuint size = s_size[slot];
        lock (Pages.KmemMap.UnmapGate)
        {
            LeakTracking.Remove(RecordKind.Foreign, ~(nuint)p, out _);
            OsPages.Provider.Decommit((nint)FirstPage(slot, size), PagesFor(size) * PageSize);
        }
        lock (s_lock)
        {
            s_state[slot] = Freed;
            s_freed.Enqueue(slot);
        }
        byte* tc = ThreadCaches.Current();
        TypeAccounting.Give(type, ThreadCaches.Slot(tc, type.Index), (long)(PagesFor(size) * PageSize));
    }

    // The slot of a live block that starts at p and belongs to type, or what is wrong ("freed", "never", "unaligned",
    // "owner"). With take, a live block becomes Taken (being freed) under the lock. Messages are printed by the caller,
    // outside the lock.
    private const byte Taken = 3;

    private static (int Slot, string? Problem) Validate(void* p, MallocType type, string op, bool take)
    {
        int slot = (int)((nuint)((byte*)p - Base) / s_stride);
        lock (s_lock)
        {
            byte state = s_state[slot];
            if (state != Live)
                return (slot, (state is Freed or Taken) && p == UserAddress(slot, s_size[slot]) ? "freed" : "never");
            if (p != UserAddress(slot, s_size[slot]))
                return (slot, "unaligned");
            if (s_type[slot] != type.Index)
                return (slot, "owner");
            if (take)
                s_state[slot] = Taken;
            return (slot, null);
        }
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void Fail(void* p, string op, int slot, string problem, MallocType type)
    {
        string owner = TypeRegistry.ByIndex(s_type[slot])?.ShortDesc ?? "?";
        switch (problem)
        {
            case "freed":
                KmemDiagnostics.Publish(KmemMessageKind.Warning, $"multiply freed item {Panic.Addr(p)}"
                    + $"\n  size {s_size[slot]}, type {owner}, last allocated at {CallSites.Describe(s_site[slot])}");
                Heap.PrintLog(p);
                Panic.Raise($"{op}: duplicated free");
                break;
            case "unaligned":
                Heap.PrintLog(p);
                Panic.Raise($"{op}: unaligned addr {Panic.Addr(p)}, size {s_size[slot]}, type {type.ShortDesc}, mask 15");
                break;
            case "owner":
                Panic.Raise($"{op}: addr {Panic.Addr(p)} belongs to type {owner}, not {type.ShortDesc}");
                break;
        }
        Panic.Raise($"{op}: addr {Panic.Addr(p)} was never allocated by malloc");
    }

    // The slack before and after a live block must still hold the pattern: a small underflow or overflow (within the
    // pages, so no fault) is reported with FreeBSD's redzone messages, as for redzoned blocks.
    private static void CheckSlack(int slot, byte* p, nuint size, MallocType type)
    {
        byte* first = FirstPage(slot, size), end = PagesEnd(slot);
        int before = Redzones.CountChanged(first, (int)(p - first)), after = Redzones.CountChanged(p + size, (int)(end - (p + size)));
        if (before != 0 || after != 0)
            Redzones.Report(before, after, p, size, $"\n  type {type.ShortDesc}, allocated at {CallSites.Describe(s_site[slot])} (guard pages)");
    }

    /// <summary>Every live guarded block (complemented address, request size, type, bytes charged), for the heap verifier.</summary>
    public static List<(nuint AddressComplement, nuint Size, ushort Type, long Bytes)> LiveBlocks()
    {
        var live = new List<(nuint, nuint, ushort, long)>();
        lock (s_lock)
        {
            for (int slot = 0; slot < s_fresh; slot++)
                if (s_state[slot] == Live)
                    live.Add((~(nuint)UserAddress(slot, s_size[slot]), s_size[slot], s_type[slot], (long)(PagesFor(s_size[slot]) * PageSize)));
        }
        return live;
    }

    private static void Reserve()
    {
        IPageProvider pages = OsPages.Provider;
        s_stride = PagesPerSlot * PageSize;
        nint p = pages.Reserve(s_stride * SlotCount);
        if (p == 0)
            return;
        Pages.OwnRegions.Add((void*)p, s_stride * SlotCount);
        Volatile.Write(ref s_baseComplement, ~(nuint)p);
    }
}

// Heap.cs — the allocator's public face: malloc, realloc, free, malloc_roundup and the statistics (vmstat -m).
// The fast paths live here: one thread-static access, the thread's bin and type slot, the side tables; no lock, no atomic.
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kmem.Caches;
using Kmem.Checks;
using Kmem.Diagnostics;
using Kmem.Leak;
using Kmem.Pages;
using Kmem.Slabs;
using Kmem.Types;

namespace Kmem;

/// <summary>
/// The Kmem allocator: malloc(9) for .NET. Every block belongs to a <see cref="MallocType"/> that keeps statistics and
/// enforces a limit. Misuse (bad free, bogus type, impossible request) panics: <see cref="KmemPanicException"/>.
/// </summary>
public static unsafe partial class Heap
{
    private const MallocFlags KnownFlags = MallocFlags.NoWait | MallocFlags.Zero | MallocFlags.CanFail;

    /// <summary>
    /// malloc(9): a block of at least <paramref name="size"/> bytes (16-byte aligned) under <paramref name="type"/>.
    /// Returns null only with <see cref="MallocFlags.NoWait"/> (limit reached, no pages) or <see cref="MallocFlags.CanFail"/>
    /// (too large, no pages). The caller's member, file and line are recorded as the allocation site.
    /// </summary>
    public static void* Malloc(nuint size, MallocType type, MallocFlags flags = MallocFlags.WaitOk,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        // One test covers a bad type, unknown flags and a type some DIAGNOSTIC check applies to (its AllocGate).
        if (type is null || type.AllocGate != 0 || (flags & ~KnownFlags) != 0)
            return MallocChecked(size, type, flags, CallSites.Intern(member, file, line));
        // Inlined into the caller up to here, where the site's strings are constants and the intern folds to a few
        // compares, and the thread's cache is read here too. The allocation itself is one call to a function that
        // calls nothing on its fast path, so a call site costs little code and neither side saves registers for the
        // other (docs/benchmarks.md, sixth session).
        return MallocValid(ThreadCaches.Current(), size, type, flags, CallSites.Intern(member, file, line));
    }

    // Malloc's allocation once its arguments passed the test.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void* MallocValid(byte* tc, nuint size, MallocType type, MallocFlags flags, uint site) =>
        size <= SizeClasses.MaxSmall ? AllocSmall(tc, size, type, flags, site, 0) : AllocLarge(size, type, flags, site);

    /// <summary>
    /// A handle on this thread's cache for <paramref name="type"/>, for a run of <see cref="MallocBatch.Malloc"/> and
    /// <see cref="MallocBatch.Free"/> calls that skip the per-call lookups (the thread's cache, the call site). Its blocks
    /// are ordinary blocks of the type, attributed to the caller of this method. A bad type panics as Malloc does.
    /// </summary>
    public static MallocBatch Batch(MallocType type,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        CheckMalloc(type, MallocFlags.WaitOk);
        byte* tc = ThreadCaches.Current();
        uint site = CallSites.Intern(member, file, line);
        return new MallocBatch(tc, type, site, ThreadCaches.Context(tc, site), member, file, line);
    }

    // MallocBatch.Malloc when its own fast path does not apply (checks, a large block, bad flags): Malloc with a site id.
    internal static void* MallocAt(nuint size, MallocType? type, MallocFlags flags, uint site)
    {
        if (type is null || type.AllocGate != 0 || (flags & ~KnownFlags) != 0)
            return MallocChecked(size, type, flags, site);
        return MallocValid(ThreadCaches.Current(), size, type, flags, site);
    }

    // MallocBatch.Free when its fast path does not apply.
    internal static void FreeAt(void* addr, MallocType? type, string member, string file, int line) =>
        FreeSlow((byte*)addr, type, member, file, line);

    /// <summary>
    /// realloc(9): null <paramref name="addr"/> is Malloc; <paramref name="newSize"/> 0 is Free (returns null). A block
    /// that already holds <paramref name="newSize"/> is returned as it is; otherwise the contents move to a new block.
    /// On failure null is returned and the old block is untouched.
    /// </summary>
    public static void* Realloc(void* addr, nuint newSize, MallocType type, MallocFlags flags = MallocFlags.WaitOk,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if (addr == null)
            return Malloc(newSize, type, flags, member, file, line);
        if (newSize == 0)
        {
            Free(addr, type, member, file, line);
            return null;
        }
        CheckMalloc(type, flags);
        nuint usable = UsableSize((byte*)addr, type);
        if (newSize <= usable)
            return addr;
        void* moved = Malloc(newSize, type, flags, member, file, line);
        if (moved == null)
            return null;
        Buffer.MemoryCopy(addr, moved, usable, usable);
        Free(addr, type, member, file, line);
        return moved;
    }

    /// <summary>free(9): releases a block allocated under <paramref name="type"/>. A null, foreign, interior or already free
    /// address panics with the kernel's wording.</summary>
    public static void Free(void* addr, MallocType type,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        // A thread without a cache yet (or a bad argument from one) takes the checked path, which makes the cache only
        // for a block it frees.
        byte* tc = ThreadCaches.CurrentOrNull();
        if (tc == null || !FreeValid(tc, (byte*)addr, type))
            FreeSlow((byte*)addr, type, member, file, line);
    }

    // Free's fast path as one call. The caller reads the thread's cache (the thread-static access is a call itself), so
    // this one makes no call on its fast path and needs no callee-saved registers: a leaf, like MallocValid.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static bool FreeValid(byte* tc, byte* p, MallocType type) => TryFreeSmall(tc, p, type);

    // Free's fast path, also MallocBatch's (tc: the calling thread's cache): a live block in a slab, freed under its own
    // type, which no DIAGNOSTIC check applies to (else its FreeKey matches no owner). False for anything else, which the
    // checked path handles (and panics with the precise reason).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool TryFreeSmall(byte* tc, byte* p, MallocType? type)
    {
        nuint off = (nuint)(p - KmemMap.Base);
        if (off >= KmemMap.Size || type is null)
            return false;
        int cls = PageMap.SlabClassPlusOne(off) - 1;
        if (cls < 0)
            return false;
        ClassInfo* ci = SizeClasses.Info(cls);
        nuint inUnit = off & KmemMap.UnitMask;
        uint slot = SizeClasses.SlotOf(ci, inUnit);
        ref ushort owner = ref SlabMeta.Owner(SlabMeta.Of((uint)(off >> KmemMap.UnitShift)), slot);
        if ((nuint)slot * ci->Size != inUnit || owner != type.FreeKey)
            return false;
        owner = 0;
        FreeSmall(tc, p, cls, ci, type);
        return true;
    }

    /// <summary>malloc_roundup: the size of the block a request of <paramref name="size"/> bytes gets.</summary>
    public static nuint Roundup(nuint size)
    {
        if (size <= SizeClasses.MaxSmall)
            return SizeClasses.SizeOf(SizeClasses.ClassOf(size));
        nuint page = (nuint)Environment.SystemPageSize;
        if (size > nuint.MaxValue - page)
            throw new ArgumentOutOfRangeException(nameof(size), size, "no block can be that large");
        return (size + page - 1) & ~(page - 1);
    }

    /// <summary>Statistics of every attached type, in attach order (per-thread deltas folded now).</summary>
    public static IReadOnlyList<MallocTypeStats> TypeStats()
    {
        return TypeStatistics.FoldAll(TypeRegistry.AttachedSnapshot());
    }

    /// <summary>The text of NetBSD's <c>vmstat -m</c>: by bucket size, type by bucket size, by type, totals.</summary>
    public static string FormatVmstat() => VmstatFormatter.Format();

    // ---- allocation ----

    private static void CheckMalloc(MallocType type, MallocFlags flags)
    {
        if (type is null || type.State != MallocType.Attached || (flags & ~KnownFlags) != 0)
            BadMallocArguments(type, flags);
    }

    // The fast path's one test failed: a bad argument, or checks apply to the type.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void* MallocChecked(nuint size, MallocType? type, MallocFlags flags, uint site)
    {
        if (type is null || type.State != MallocType.Attached || (flags & ~KnownFlags) != 0)
            BadMallocArguments(type, flags);
        return DiagnosticMalloc(size, type, flags, site);
    }

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private static void BadMallocArguments(MallocType? type, MallocFlags flags)
    {
        if (type is null || type.State != MallocType.Attached)
            Panic.Raise("malloc - bogus type");
        throw new ArgumentOutOfRangeException(nameof(flags), flags, "unknown malloc flags");
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void* AllocSmall(nuint size, MallocType type, MallocFlags flags, uint site) =>
        AllocSmall(ThreadCaches.Current(), size, type, flags, site, 0);

    // The small-block fast path with the thread's cache at hand; MallocBatch also has the allocation's context (0: look
    // it up in the thread's context cache). It runs only when the thread's credit for the type covers the block, the
    // bin's head is a free block of its class and the context is cached; it checks all of that before it writes anything.
    // Anything else (an empty bin, credit to charge, a type accounted exactly, a corrupted list, a new site) goes to
    // AllocSmallSlow, which starts over. With every rare case behind one call that returns the result, few values
    // are live across a call, and the fast path keeps them in registers.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void* AllocSmall(byte* tc, nuint size, MallocType type, MallocFlags flags, uint site, uint context)
    {
        int cls = SizeClasses.ClassOf(size);
        ClassInfo* ci = SizeClasses.Info(cls);
        TypeSlot* ts = ThreadCaches.Slot(tc, type.Index);
        ClassBin* bin = ThreadCaches.Bin(tc, cls);
        long credit = ts->Credit - ci->Size;
        nuint off = BlockLink.OffsetOf(bin->Head); // an empty bin's 0 becomes nuint.MaxValue, outside kmem_map
        if (credit < 0 || type.Chunk == 0 || off >= KmemMap.Size || PageMap.SlabClassPlusOne(off) != cls + 1)
            return AllocSmallSlow(tc, size, type, flags, site, context);
        byte* meta = SlabMeta.Of((uint)(off >> KmemMap.UnitShift));
        uint slot = SizeClasses.SlotOf(ci, off & KmemMap.UnitMask);
        ref ushort owner = ref SlabMeta.Owner(meta, slot);
        if (owner != 0 || (nuint)slot * ci->Size != (off & KmemMap.UnitMask))
            return AllocSmallSlow(tc, size, type, flags, site, context);
        if (context == 0 && (context = ThreadCaches.CachedContext(tc, site)) == 0)
            return AllocSmallSlow(tc, size, type, flags, site, 0);
        ts->Credit = credit;
        if (credit < ts->LowCredit)
            ts->LowCredit = credit;
        return HandOut(tc, bin, ts, cls, KmemMap.Base + off, meta, slot, ref owner, type, flags, size, context);
    }

    // AllocSmall when its fast path does not apply: charges the type (waiting or failing at its limit), refills an empty
    // bin, and checks the head link, panicking on a corrupted list with the reason.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void* AllocSmallSlow(byte* tc, nuint size, MallocType type, MallocFlags flags, uint site, uint context)
    {
        if (context == 0)
            context = ThreadCaches.Context(tc, site);
        int cls = SizeClasses.ClassOf(size);
        ClassInfo* ci = SizeClasses.Info(cls);
        long bytes = ci->Size;
        TypeSlot* ts = ThreadCaches.Slot(tc, type.Index);
        if (!TypeAccounting.Take(type, ts, bytes, flags))
            return null;

        ClassBin* bin = ThreadCaches.Bin(tc, cls);
        nuint link = bin->Head;
        if (link == 0 && (link = BinTransfers.Refill(bin, cls)) == 0)
            return NoPages(type, ts, bytes, flags, size, site);
        // The link came from a free block, which a use-after-free write may have changed: check it points at a free
        // block of this class in a slab before touching anything (the wrong-bucket and lost-data checks).
        nuint off = BlockLink.OffsetOf(link);
        if (off >= KmemMap.Size || PageMap.SlabClassPlusOne(off) != cls + 1)
            CorruptFreeList(type, ts, bytes, bin, off, LinkProblem(off));
        byte* meta = SlabMeta.Of((uint)(off >> KmemMap.UnitShift));
        uint slot = SizeClasses.SlotOf(ci, off & KmemMap.UnitMask);
        ref ushort owner = ref SlabMeta.Owner(meta, slot);
        if (owner != 0 || (nuint)slot * ci->Size != (off & KmemMap.UnitMask))
            CorruptFreeList(type, ts, bytes, bin, off, "malloc: lost data");
        return HandOut(tc, bin, ts, cls, KmemMap.Base + off, meta, slot, ref owner, type, flags, size, context);
    }

    // Takes the checked head block p off its bin and gives it to the type: owner, context, counts, birth stamp. The
    // calls (tracing, zeroing) come last, so nothing but p is live across them.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void* HandOut(byte* tc, ClassBin* bin, TypeSlot* ts, int cls, byte* p, byte* meta, uint slot,
        ref ushort owner, MallocType type, MallocFlags flags, nuint size, uint context)
    {
        bin->Head = BlockLink.Next(p);
        bin->Count--;
        bin->Allocs++;
        owner = (ushort)type.Index;
        SlabMeta.Site(meta, slot) = context;
        ts->Allocs++;
        ulong bit = SizeClasses.SizeBit(cls);
        if ((ts->Sizes & bit) == 0)
            ts->Sizes |= bit;
        if (LeakTracking.Enabled)
        {
            uint stamp = ++ThreadCaches.Header(tc)->Sequence;
            SlabMeta.Stamp(meta, slot) = stamp;
            SlabMeta.Leak(meta, slot) = 0; // also marks the checksum as not computed
            if (LeakTracking.Trace)
                return Traced(p, stamp, flags, size);
        }
        if ((flags & MallocFlags.Zero) != 0)
            NativeMemory.Clear(p, size);
        return p;
    }

    // HandOut's end with kmemleak's allocation trace on.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void* Traced(byte* p, uint stamp, MallocFlags flags, nuint size)
    {
        Kmemleak.RecordTrace(p, stamp);
        if ((flags & MallocFlags.Zero) != 0)
            NativeMemory.Clear(p, size);
        return p;
    }

    // What is wrong with a link that does not name a block of its list's class: null when it leads out of every slab.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static string? LinkProblem(nuint off) =>
        off < KmemMap.Size && PageMap.SlabClassPlusOne(off) != 0 ? "malloc: wrong bucket" : null;

    // A free list led somewhere it must not: give the charge back, drop the list (it cannot be trusted) and panic.
    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private static void CorruptFreeList(MallocType type, TypeSlot* ts, long bytes, ClassBin* bin, nuint off, string? panic)
    {
        TypeAccounting.Refund(type, ts, bytes);
        WithdrawnBlocks.NoteCut(SizeClasses.ClassOf((nuint)bytes), bin->Count); // the list is dropped: Verify counts it
        bin->Head = 0;
        bin->Count = 0;
        string addr = "0x" + ((nuint)KmemMap.Base + off).ToString("x");
        if (panic is null)
        {
            KmemDiagnostics.Publish(KmemMessageKind.Warning,
                $"Data modified on freelist: word 0 of object on the size {bytes} list (invalid addr {addr})");
            Panic.Raise($"malloc: free list of size {bytes} corrupted (invalid addr {addr})");
        }
        Panic.Raise($"{panic} (block {addr} on the free list of size {bytes})");
    }

    private static void* AllocLarge(nuint size, MallocType type, MallocFlags flags, uint site)
    {
        byte* tc = ThreadCaches.Current();
        nuint page = (nuint)KmemMap.PageSize;
        if (size > KmemMap.Size || size > nuint.MaxValue - page)
        {
            if ((flags & MallocFlags.CanFail) != 0)
                return null;
            Panic.Raise("malloc: allocation too large");
        }
        nuint rounded = (size + page - 1) & ~(page - 1);
        long bytes = (long)rounded;
        TypeSlot* ts = ThreadCaches.Slot(tc, type.Index);
        if (!TypeAccounting.Take(type, ts, bytes, flags))
            return null;
        uint context = ThreadCaches.Context(tc, site);
        byte* p = LargeBlocks.Alloc(rounded, (ushort)type.Index, context);
        if (p == null)
            return NoPages(type, ts, bytes, flags, size, site);
        LeakTracking.AddKmem(RecordKind.Large, p, rounded, 1, (ushort)type.Index, context);
        ts->Allocs++;
        ts->Sizes |= 1UL << (SizeClasses.Count + LargeBlocks.BucketOf(rounded));
        // Pages fresh from the OS are zero, so M_ZERO costs nothing here.
        return p;
    }

    // kmem_map or the OS had no pages: give the charge back, then fail or panic as the flags say. A WaitOk caller whose
    // page request was refused by failure injection (transient by design) tries again instead, as M_WAITOK waits for pages.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void* NoPages(MallocType type, TypeSlot* ts, long bytes, MallocFlags flags, nuint size, uint site)
    {
        TypeAccounting.Refund(type, ts, bytes);
        if ((flags & (MallocFlags.NoWait | MallocFlags.CanFail)) != 0)
            return null;
        if (FaultInjection.RetryIfInjected(
                () => (nint)(size <= SizeClasses.MaxSmall ? AllocSmall(size, type, flags, site) : AllocLarge(size, type, flags, site)),
                out nint again))
            return (void*)again;
        Panic.Raise("malloc: out of space in kmem_map");
        return null;
    }

    // ---- free ----

    /// <summary>A validated allocated block: its class (−1 = large), side-table position or page-map entry, and size.</summary>
    private readonly struct Block(int cls, byte* meta, uint slot, UnitInfo* unit, uint unitIndex, nuint size)
    {
        public readonly int Class = cls;
        public readonly byte* Meta = meta;
        public readonly uint Slot = slot;
        public readonly UnitInfo* Unit = unit;
        public readonly uint UnitIndex = unitIndex;
        public readonly nuint Size = size;
    }

    // Every check here is on the always-on path: the page map and the state byte make them nearly free.
    private static Block Locate(byte* p, [NotNull] MallocType? type, string op)
    {
        if (p == null || type is null)
            BadArgument(op, p);
        nuint off = (nuint)(p - KmemMap.Base);
        if (off >= KmemMap.Size)
            NotInMap(op, p);
        UnitInfo* e = PageMap.Lookup(p);
        if (e == null || e->Kind == UnitKind.Unused)
            NotAllocated(op, p, wasFreed: false);
        uint unit = (uint)(off >> KmemMap.UnitShift);
        if (e->Kind == UnitKind.Slab)
        {
            int cls = e->Class;
            uint size = SizeClasses.SizeOf(cls);
            nuint inUnit = off & KmemMap.UnitMask;
            uint slot = SizeClasses.SlotOf(cls, inUnit);
            if (slot >= SizeClasses.BlocksPerSlab(cls))
                Unaligned(op, p, size, type, size - 1);
            // A block starts at its slot's first byte; a redzoned block (owner flag) is freed by the address after
            // its front zone. A free block met at either offset was most likely freed already.
            nuint delta = inUnit - (nuint)slot * size;
            byte* meta = SlabMeta.Of(unit);
            ushort owner = SlabMeta.Owner(meta, slot);
            if (owner == 0 && delta is 0 or Redzones.Front)
                NotAllocated(op, p, ClassDepot.All[cls].WasCarved(unit, slot), size, type, SlabMeta.Site(meta, slot));
            if (delta != (nuint)((owner & Redzones.OwnerFlag) != 0 ? Redzones.Front : 0))
                Unaligned(op, p, size, type, size - 1);
            CheckOwner(op, p, (ushort)(owner & Redzones.TypeMask), type);
            return new Block(cls, meta, slot, e, unit, size);
        }
        if (e->Kind == UnitKind.Released)
            NotAllocated(op, p, wasFreed: true);
        if (e->Kind is UnitKind.PerCpu or UnitKind.VmallocHead or UnitKind.VmallocTail)
            WrongFamily(op, p, e->Kind == UnitKind.PerCpu ? "per-CPU memory; use FreePercpu" : "vmalloc'd memory; use Vfree");
        UnitInfo* head = e;
        if (e->Kind == UnitKind.LargeTail)
        {
            unit = e->Head;
            head = PageMap.Entry(unit);
        }
        nuint largeSize = LargeBlocks.SizeOf(head);
        if (head != e || (off & KmemMap.UnitMask) != 0)
            Unaligned(op, p, largeSize, type, (nuint)KmemMap.PageSize - 1);
        CheckOwner(op, p, head->TypeIndex, type);
        return new Block(-1, null, 0, head, unit, largeSize);
    }

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private static void BadArgument(string op, byte* p) =>
        Panic.Raise(p == null ? $"{op}: null addr (free(9) does not accept NULL)" : $"{op}: bogus type (null)");

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private static void WrongFamily(string op, byte* p, string what) => Panic.Raise($"{op}: addr {Panic.Addr(p)} is {what}");

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private static void NotInMap(string op, byte* p) => Panic.Raise($"{op}: addr {Panic.Addr(p)} not within kmem_map");

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private static void Unaligned(string op, byte* p, nuint size, MallocType type, nuint mask)
    {
        PrintLog(p);
        Panic.Raise($"{op}: unaligned addr {Panic.Addr(p)}, size {size}, type {type.ShortDesc}, mask {mask}");
    }

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private static void NotAllocated(string op, byte* p, bool wasFreed, nuint size = 0, MallocType? type = null, uint context = 0)
    {
        if (!wasFreed)
            Panic.Raise($"{op}: addr {Panic.Addr(p)} was never allocated by malloc");
        // The seed's line, then what is known of the block: its size, the type the caller named, its last allocation.
        KmemDiagnostics.Publish(KmemMessageKind.Warning, $"multiply freed item {Panic.Addr(p)}"
            + (size == 0 ? "" : $"\n  size {size}, type {type?.ShortDesc ?? "?"}, last allocated at {AllocContexts.Describe(context)}"));
        PrintLog(p);
        Panic.Raise($"{op}: duplicated free");
    }

    private static void CheckOwner(string op, byte* p, ushort owner, MallocType type)
    {
        if (owner != type.Index)
            WrongOwner(op, p, owner, type);
    }

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private static void WrongOwner(string op, byte* p, ushort owner, MallocType type)
    {
        Panic.Raise($"{op}: addr {Panic.Addr(p)} belongs to type {TypeRegistry.ByIndex(owner)?.ShortDesc ?? "?"}, not {type.ShortDesc}");
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FreeSmall(byte* p, int cls, ClassInfo* ci, MallocType type) =>
        FreeSmall(ThreadCaches.Current(), p, cls, ci, type);

    // Free's fast path for a checked block: the thread's credit stays under its bound and the bin has room. Anything else
    // goes to FreeSmallSlow, which does the same with the slow parts; nothing here has been written before that call.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FreeSmall(byte* tc, byte* p, int cls, ClassInfo* ci, MallocType type)
    {
        TypeSlot* ts = ThreadCaches.Slot(tc, type.Index);
        ClassBin* bin = ThreadCaches.Bin(tc, cls);
        long credit = ts->Credit + ci->Size;
        if (credit > 2 * type.Chunk || bin->Count >= ci->Batch || Volatile.Read(ref type.Waiters) > 0)
        {
            FreeSmallSlow(tc, p, cls, ci, type);
            return;
        }
        ts->Frees++;
        ts->Credit = credit;
        BlockLink.Next(p) = bin->Head;
        bin->Head = BlockLink.Encode(p);
        bin->Count++;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void FreeSmallSlow(byte* tc, byte* p, int cls, ClassInfo* ci, MallocType type)
    {
        long bytes = ci->Size;
        TypeAccounting.Give(type, ThreadCaches.Slot(tc, type.Index), bytes);

        ClassBin* bin = ThreadCaches.Bin(tc, cls);
        if (bin->Count >= ci->Batch)
            BinTransfers.Spill(bin, cls);
        BlockLink.Next(p) = bin->Head;
        bin->Head = BlockLink.Encode(p);
        bin->Count++;
    }

    private static void FreeLarge(Block b, MallocType type)
    {
        byte* tc = ThreadCaches.Current();
        LeakTracking.RemoveKmem(KmemMap.UnitAddress(b.UnitIndex));
        LargeBlocks.Free(b.Unit, b.UnitIndex);
        long bytes = (long)b.Size;
        TypeAccounting.Give(type, ThreadCaches.Slot(tc, type.Index), bytes);
    }
}

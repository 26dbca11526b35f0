// Checks/Heap.Diagnostic.cs — the allocator's DIAGNOSTIC paths: malloc with the free-list checks, redzones, guard pages
// and the log; the checked free every call leaves the fast path for (poison, quarantine, redzone verification, the
// double-free and alignment messages); and the quarantine's exit, where a poisoned block is checked before reuse.
// The fast paths in Heap.cs reach these when their one test fails: a type's AllocGate is set, or a block's owner entry
// does not match the type's FreeKey (−1 while checks apply to the type).
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using Kmem.Caches;
using Kmem.Checks;
using Kmem.Diagnostics;
using Kmem.Pages;
using Kmem.Slabs;
using Kmem.Types;

namespace Kmem;

public static unsafe partial class Heap
{
    /// <summary>Test hook: runs between a checked free's validation and its release of the block (a racing free).</summary>
    internal static Action<nint>? BeforeOwnerRelease;

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void* DiagnosticMalloc(nuint size, MallocType type, MallocFlags flags, uint site)
    {
        if (type.Magic != MallocType.MagicValue)
            Panic.Raise("malloc - bogus type");
        // MALLOC_MAKE_FAILURES: while it is on every type's AllocGate is set, so every malloc passes here.
        if ((flags & MallocFlags.NoWait) != 0 && FaultInjection.FailNoWait(type))
            return null;
        if (CheckSwitch.Guard is { } guard && guard.Matches(type, size))
        {
            void* g = GuardPages.Alloc(size, type, flags, site, out bool served);
            if (g != null)
                MallocLog.Record(MallocLog.Alloc, g, size, type.Index, site);
            if (served)
                return g;
        }
        if (!CheckSwitch.Applies(type))
            return size <= SizeClasses.MaxSmall ? AllocSmall(size, type, flags, site) : AllocLarge(size, type, flags, site);

        byte* p;
        if (CheckSwitch.Redzones && size <= SizeClasses.MaxSmall - Redzones.Extra)
        {
            int cls = SizeClasses.ClassOf(size + Redzones.Extra);
            nuint blockSize = SizeClasses.SizeOf(cls);
            VetFreeList(cls);
            p = (byte*)AllocSmall(size + Redzones.Extra, type, flags, site);
            if (p == null)
                return null;
            nuint off = (nuint)(p - KmemMap.Base);
            SlabMeta.Owner(SlabMeta.Of((uint)(off >> KmemMap.UnitShift)), SizeClasses.SlotOf(cls, off & KmemMap.UnitMask)) |= Redzones.OwnerFlag;
            Redzones.Write(p, blockSize, size); // the zones only: M_ZERO already cleared the caller's bytes
            p += Redzones.Front;
        }
        else
        {
            if (size <= SizeClasses.MaxSmall)
                VetFreeList(SizeClasses.ClassOf(size));
            p = (byte*)(size <= SizeClasses.MaxSmall ? AllocSmall(size, type, flags, site) : AllocLarge(size, type, flags, site));
            if (p == null)
                return null;
        }
        MallocLog.Record(MallocLog.Alloc, p, size, type.Index, site);
        return p;
    }

    // Checks the link the next allocation of this class will follow, in the calling thread's list, before anything is
    // taken: a link out of the arena cuts the list there ("invalid addr", as NetBSD); a link to a block of another size
    // or to a block in use cuts it and panics. The always-on check in AllocSmall covers the head itself.
    private static void VetFreeList(int cls)
    {
        ClassBin* bin = ThreadCaches.Bin(ThreadCaches.Current(), cls);
        if (bin->Head == 0 && BinTransfers.Refill(bin, cls) == 0)
            return;
        if (!IsBlockStartOf(BlockLink.OffsetOf(bin->Head), cls, out _))
            return;
        byte* head = BlockLink.Decode(bin->Head);
        nuint next = BlockLink.Next(head);
        if (next == 0)
            return;
        nuint off = BlockLink.OffsetOf(next);
        UnitInfo* unit = off < KmemMap.Size ? PageMap.LookupOffset(off) : null;
        bool startOfBlock = IsBlockStartOf(off, cls, out ushort owner);
        if (startOfBlock && owner == 0)
            return;
        BlockLink.Next(head) = 0; // cut: the blocks behind the bad link are lost to the allocator, as in NetBSD
        WithdrawnBlocks.NoteCut(cls, bin->Count - 1);
        bin->Count = 1;
        uint size = SizeClasses.SizeOf(cls);
        string at = "0x" + ((nuint)KmemMap.Base + off).ToString("x");
        if (startOfBlock || (unit != null && unit->Kind == UnitKind.Slab))
            PrintLog(KmemMap.Base + off); // a block the list should not lead to: its history
        if (unit != null && unit->Kind == UnitKind.Slab && unit->Class != cls)
            Panic.Raise($"malloc: wrong bucket (block {at} of size {SizeClasses.SizeOf(unit->Class)} follows {Panic.Addr(head)} on the free list of size {size})");
        if (startOfBlock)
            Panic.Raise($"malloc: lost data (block {at}, in use, follows {Panic.Addr(head)} on the free list of size {size})");
        Report($"Data modified on freelist: word 0 of object {Panic.Addr(head)} size {size} previous type {MallocType.Free.ShortDesc} (invalid addr {at})", head);
    }

    // Whether off is the start of a block in a slab of class cls (its owner entry in owner: 0 when the block is free).
    private static bool IsBlockStartOf(nuint off, int cls, out ushort owner)
    {
        owner = 0;
        if (off >= KmemMap.Size || PageMap.SlabClassPlusOne(off) != cls + 1) // the fast path's own test of a link
            return false;
        uint slot = SizeClasses.SlotOf(cls, off & KmemMap.UnitMask);
        if ((nuint)slot * SizeClasses.SizeOf(cls) != (off & KmemMap.UnitMask) || slot >= SizeClasses.BlocksPerSlab(cls))
            return false;
        owner = SlabMeta.Owner(SlabMeta.Of((uint)(off >> KmemMap.UnitShift)), slot);
        return true;
    }

    /// <summary>The checked free: guard pages, redzones, DIAGNOSTIC poisoning and quarantine, and every misuse message.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void FreeSlow(byte* p, MallocType? type, string member, string file, int line)
    {
        if (type is not null && type.Magic != MallocType.MagicValue)
            Panic.Raise($"free: bogus type {type.ShortDesc} (bad magic)");
        if (type is not null && GuardPages.Contains(p))
        {
            GuardPages.Release(p, type, "free");
            if (CheckSwitch.Active)
                MallocLog.Record(MallocLog.Free, p, 0, type.Index, CallSites.Intern(member, file, line));
            return;
        }
        Block b = Locate(p, type, "free");
        bool diagnostic = CheckSwitch.Applies(type);
        if (b.Class < 0)
        {
            if (diagnostic)
                MallocLog.Record(MallocLog.Free, p, b.Size, type.Index, CallSites.Intern(member, file, line));
            FreeLarge(b, type);
            return;
        }
        ClassInfo* ci = SizeClasses.Info(b.Class);
        ushort owner = SlabMeta.Owner(b.Meta, b.Slot);
        byte* block = KmemMap.UnitAddress(b.UnitIndex) + (nuint)b.Slot * b.Size;
        nuint size = b.Size;
        if ((owner & Redzones.OwnerFlag) != 0)
            size = CheckRedzones(block, b, type);
        if (!diagnostic)
        {
            SlabMeta.Owner(b.Meta, b.Slot) = 0;
            FreeSmall(block, b.Class, ci, type);
            return;
        }
        BeforeOwnerRelease?.Invoke((nint)p);
        if (!ReleaseOwner(b.Meta, b.Slot, owner))
        {
            KmemDiagnostics.Publish(KmemMessageKind.Warning, $"multiply freed item {Panic.Addr(p)} (freed by two threads at once)");
            PrintLog(p);
            Panic.Raise("free: multiple frees");
        }
        TypeAccounting.Give(type, ThreadCaches.Slot(ThreadCaches.Current(), type.Index), ci->Size);
        uint poisoned = Poison.ExtentFor(b.Size);
        Poison.Fill(block, poisoned);
        MallocLog.Record(MallocLog.Free, p, size, type.Index, CallSites.Intern(member, file, line));
        var entry = new QuarantineEntry { Link = BlockLink.Encode(block), PoisonBytes = poisoned, TypeIndex = (ushort)type.Index, Class = (byte)b.Class };
        if (Quarantine.Push(entry, out QuarantineEntry evicted))
            LeaveQuarantine(evicted);
        if (!CheckSwitch.AnyDiagnostic)
            TrimQuarantine(0); // the mode went off while this free ran: nothing else would release the block
    }

    // Clears the owner entry only if it still holds what the free validated: a second free that raced past the
    // validation finds it changed, the analogue of NetBSD's free count passing the bucket's size.
    private static bool ReleaseOwner(byte* meta, uint slot, ushort expected)
    {
        ushort* entry = (ushort*)Unsafe.AsPointer(ref SlabMeta.Owner(meta, slot));
        int* word = (int*)((nuint)entry & ~(nuint)3);
        int shift = ((nuint)entry & 2) != 0 ? 16 : 0;
        while (true)
        {
            int old = Volatile.Read(ref *word);
            if ((ushort)(old >> shift) != expected)
                return false;
            if (Interlocked.CompareExchange(ref *word, old & ~(0xFFFF << shift), old) == old)
                return true;
        }
    }

    // Verifies a redzoned block's zones (the messages are printed, not panics, as FreeBSD's default) and returns the
    // request size they recorded.
    private static nuint CheckRedzones(byte* block, Block b, MallocType type)
    {
        (int before, int after, nuint size) = Redzones.Verify(block, b.Size);
        if (before != 0 || after != 0)
            Redzones.Report(before, after, block + Redzones.Front, size,
                $"\n  type {type.ShortDesc}, allocated at {AllocContexts.Describe(SlabMeta.Site(b.Meta, b.Slot))}");
        return size;
    }

    // A block leaves the quarantine: if its poison is intact it goes back to a free list, else the write after free
    // is reported and the block is never handed out again.
    private static void LeaveQuarantine(in QuarantineEntry e)
    {
        byte* block = BlockLink.Decode(e.Link);
        if (PoisonChanged(e, ""))
        {
            WithdrawnBlocks.Note(e.Link); // kept out of use for good; Verify counts it as withdrawn, not lost
            return;
        }
        ClassInfo* ci = SizeClasses.Info(e.Class);
        ClassBin* bin = ThreadCaches.Bin(ThreadCaches.Current(), e.Class);
        if (bin->Count >= ci->Batch)
            BinTransfers.Spill(bin, e.Class);
        BlockLink.Next(block) = bin->Head;
        bin->Head = e.Link;
        bin->Count++;
    }

    /// <summary>
    /// Walks every piece of allocator and detector metadata and checks that it is consistent: the page map's unit kinds
    /// and runs, every slab's owner entries against the blocks on free lists (shared depots, every live thread cache's
    /// bins and spares, DIAGNOSTIC's quarantine and its poison; a block is exactly one of allocated, free-listed or never
    /// carved; lists have no cycles and match their counts), per-type statistics against the sum of live blocks' rounded
    /// sizes and counts, large blocks, per-CPU chunks, vmalloc areas, guard-page blocks, and the leak detector's records
    /// (each matches a live allocation; no record of a freed one). Returns the problems found; empty means healthy.
    /// <para>Exact when no other thread allocates or frees during the call (the caller's responsibility, as for exact
    /// <c>vmstat -m</c> figures). Each shared structure is read under its own lock and nothing is changed but what a
    /// statistics fold changes (as <see cref="TypeStats"/>), so it is safe at any time; but with other threads running
    /// it still walks their private bins and statistics slots as they change, and may report mismatches that a call at
    /// a quiet moment would not.</para>
    /// </summary>
    public static IReadOnlyList<string> Verify() => HeapVerifier.Run().Problems;

    // Checks a quarantined block's poison; a change is reported (with the kernel's message, the block's last allocation
    // site and the log around it) and true returned.
    internal static bool PoisonChanged(in QuarantineEntry e, string prefix)
    {
        byte* block = BlockLink.Decode(e.Link);
        int word = Poison.FirstChanged(block, e.PoisonBytes);
        if (word < 0)
            return false;
        nuint off = (nuint)(block - KmemMap.Base);
        uint site = SlabMeta.Site(SlabMeta.Of((uint)(off >> KmemMap.UnitShift)), SizeClasses.SlotOf(e.Class, off & KmemMap.UnitMask));
        Report($"{prefix}Data modified on freelist: word {word} of object {Panic.Addr(block)} size {SizeClasses.SizeOf(e.Class)}"
            + $" previous type {TypeRegistry.ByIndex(e.TypeIndex)?.ShortDesc ?? "?"} (0x{((uint*)block)[word]:x} != 0x{Poison.Word:x})"
            + $"\n  last allocated at {AllocContexts.Describe(site)}", block);
        return true;
    }

    /// <summary>Releases every quarantined block once no type is in DIAGNOSTIC mode (each is checked on the way out).</summary>
    internal static void DrainQuarantineIfIdle()
    {
        if (!CheckSwitch.AnyDiagnostic)
            TrimQuarantine(0);
    }

    /// <summary>Releases the oldest quarantined blocks until at most <paramref name="keep"/> wait.</summary>
    internal static void TrimQuarantine(int keep)
    {
        while (Quarantine.TryTakeOldest(keep, out QuarantineEntry e))
            LeaveQuarantine(e);
    }

    // A console message about a block, followed by the allocation log around it.
    private static void Report(string message, void* p)
    {
        KmemDiagnostics.Publish(KmemMessageKind.Warning, message);
        PrintLog(p);
    }

    /// <summary>Prints MALLOCLOG's events for <paramref name="p"/> and its neighbours, if any were logged.</summary>
    internal static void PrintLog(void* p)
    {
        if (MallocLog.Describe(p) is { } lines)
            KmemDiagnostics.Publish(KmemMessageKind.Warning, lines);
    }

    // The bytes a realloc may keep in place: the request size of a redzoned or guarded block (whose zones are verified
    // here, as FreeBSD's realloc does), else the block's size.
    private static nuint UsableSize(byte* p, [NotNull] MallocType? type)
    {
        if (type is not null && type.Magic != MallocType.MagicValue)
            Panic.Raise("malloc - bogus type");
        if (type is not null && GuardPages.Contains(p))
            return GuardPages.SizeOf(p, type, "realloc");
        Block b = Locate(p, type, "realloc");
        if (b.Class >= 0 && (SlabMeta.Owner(b.Meta, b.Slot) & Redzones.OwnerFlag) != 0)
            return CheckRedzones(KmemMap.UnitAddress(b.UnitIndex) + (nuint)b.Slot * b.Size, b, type);
        return b.Size;
    }
}

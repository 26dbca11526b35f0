// Leak/LeakScanner.Parallel.cs — marking on every core: the gray slab blocks of a pass are traced by all lanes of
// ScanWorkers at once, in sweeps over the slabs in address order. A block to be traced has its bit set in the pending
// bitmap; a sweep takes the slabs from a shared cursor and, word by word, the blocks that are pending and not gray, makes
// them gray (an atomic or: the lane that sets a gray bit scans the block, so each block is scanned once) and scans
// them; a block they refer to becomes pending. One ahead of the sweep (later in the slab being swept, or in a slab not
// claimed yet) is traced in the same sweep, one behind it in the next, so blocks and their side tables are read in
// address order rather than one cache miss each (the finger of Printezis and Detlefs' mark-sweep, with a pending bit
// instead of a stack entry). A lane with nothing pending claims the next slabs at once, so a chain of blocks across
// slabs takes about a sweep a slab, while a tree whose parents come before their children (leakbench) takes one.
// Lanes meet after each sweep; a sweep that traced fewer than SweepMinBlocks (references leading backwards, as in a
// list built by prepending) ends the round, and what is still pending goes back to the scanning thread's depth-first
// trace. A word that refers to anything but a slab block (a large, vmalloc, per-CPU, foreign or physical object), or to
// a gray or pending vmalloc descriptor, is kept (complemented) and followed by the scanning thread afterwards, on the
// serial path with its locks and counts. Scan areas of slab blocks are honoured as on the serial path.
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Kmem.Pages;
using Kmem.Slabs;

namespace Kmem.Leak;

internal static unsafe partial class LeakScanner
{
    /// <summary>Set by tests: marking stays on the scanning thread (<c>false</c>), or uses every lane even for a small
    /// heap (<c>true</c>); null is the default choice.</summary>
    internal static bool? ParallelMarkingOverride;

    /// <summary>How many times marking ran on the lanes (for tests).</summary>
    internal static long ParallelRounds;

    /// <summary>How many sweeps over the slabs parallel marking has made, in all rounds (for tests).</summary>
    internal static long Sweeps;

    /// <summary>How many times the white blocks' checksums were summed on the lanes (for tests).</summary>
    internal static long ParallelSums;

    /// <summary>Set by tests: called by each lane when it has summed its slabs (a failing lane).</summary>
    internal static Action<int>? SumLaneFault;

    /// <summary>How many rounds ended with blocks handed back to the scanning thread (for tests).</summary>
    internal static long RoundsHandedBack;

    // Below this many slabs a pass has too little to trace to be worth waking the workers.
    private const int ParallelMinSlabs = 16;

    // A sweep that traces fewer blocks than this ends the round: the rest is traced depth-first on the scanning thread.
    internal const int SweepMinBlocks = 256;

    private sealed class MarkLane
    {
        public readonly List<ulong> Deferred = new(); // ~word, for the scanning thread
        public long Bytes;
        public long Traced; // blocks scanned in the current sweep
        public readonly List<ulong> Changed = new(); // ~(unit << 32 | slot): white blocks whose sum changed
    }

    private static MarkLane[] s_markLanes = Array.Empty<MarkLane>();
    private static bool s_pendingDirty; // some pending bit may be set (a round is running or failed)
    private static int s_sweepNext;     // index in s_slabs (address order) of the next slab to claim in this sweep
    private static int s_sweepArrived;  // lanes done with this sweep
    private static long s_sweepTraced;  // blocks they scanned in it
    private static int s_sweepNumber;   // sweeps of this round so far (lanes wait for it to change)
    private static bool s_sweepsOver;   // set with the last s_sweepNumber of a round
    private static readonly Action<int> s_markLane = MarkLaneJob;
    private static readonly Action<int> s_sumLane = SumLaneJob;
    private static int s_sumNext;       // index in s_slabs of the next slab to sum

    private static bool UseParallelMarking() => ParallelMarkingOverride ?? (s_slabs.Length >= ParallelMinSlabs && ScanWorkers.Lanes > 1);

    // Second chance on every lane: each lane sums the white blocks of the slabs it claims; the scanning thread then grays
    // those whose sum changed (the serial path's work list, drained by the caller).
    private static void SumWhiteBlocksInParallel()
    {
        EnsureMarkLanes();
        s_sumNext = 0;
        ParallelSums++;
        try
        {
            ScanWorkers.Run(s_sumLane);
            foreach (MarkLane lane in s_markLanes)
                GrayChanged(lane.Changed);
        }
        catch
        {
            foreach (MarkLane lane in s_markLanes)
                ForgetSums(lane.Changed); // lanes grayed already are on the scan's list, which Run forgets
            throw;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    private static void SumLaneJob(int index)
    {
        List<ulong> changed = s_markLanes[index].Changed;
        changed.Clear();
        for (int i; (i = Interlocked.Increment(ref s_sumNext) - 1) < s_slabs.Length && !ScanWorkers.Failed;)
            SumWhiteBlocks(s_slabs[i], changed);
        SumLaneFault?.Invoke(index);
    }

    private static void EnsureMarkLanes()
    {
        int lanes = ScanWorkers.Lanes;
        if (s_markLanes.Length != lanes)
        {
            var all = new MarkLane[lanes];
            for (int i = 0; i < lanes; i++)
                all[i] = i < s_markLanes.Length ? s_markLanes[i] : new MarkLane();
            s_markLanes = all;
        }
    }

    /// <summary>Traces every block on the work list, and all it reaches through slab blocks, on every lane, then follows
    /// the words the lanes kept for the serial path (which may gray more). Returns false when sweeps stopped paying: the
    /// blocks still to trace are on the work list again, for the serial trace.</summary>
    private static bool MarkSlabsInParallel()
    {
        EnsureMarkLanes();
        // The serial path's gray blocks become pending: not gray yet, since setting the gray bit is what claims a block
        // for scanning. No lane runs yet, so plain writes do.
        while (s_slabWork.TryPop(out ulong packed))
        {
            packed = ~packed;
            uint unit = (uint)(packed >> 32), slot = (uint)packed;
            ulong bit = 1UL << (int)(slot & 63);
            Bits(unit, Gray)[slot >> 6] &= ~bit;
            Bits(unit, Pending)[slot >> 6] |= bit;
        }
        s_pendingDirty = true; // until the bits are cleared after the round (a failed round leaves them for Mark)
        foreach (MarkLane lane in s_markLanes)
            lane.Deferred.Clear(); // also what a failed round left
        s_sweepNext = 0;
        s_sweepArrived = 0;
        s_sweepTraced = 0;
        s_sweepNumber = 0;
        s_sweepsOver = false;
        ParallelRounds++;
        ScanWorkers.Run(s_markLane);
        Sweeps += s_sweepNumber;
        bool finished = true;
        foreach (uint unit in s_slabs)
        {
            // Pending and not gray after a sweep that traced too few: gray again, on the work list.
            ulong* pending = Bits(unit, Pending), gray = Bits(unit, Gray);
            for (int w = 0, words = Words(unit); w < words; w++)
            {
                for (ulong bits = pending[w] & ~gray[w]; bits != 0; bits &= bits - 1)
                {
                    finished = false;
                    GraySlab(unit, (uint)(w * 64 + BitOperations.TrailingZeroCount(bits)));
                }
                pending[w] = 0;
            }
        }
        s_pendingDirty = false;
        RoundsHandedBack += finished ? 0 : 1;
        foreach (MarkLane lane in s_markLanes)
        {
            s_bytesScanned += lane.Bytes;
            foreach (ulong c in lane.Deferred)
                ReferenceWord((nuint)~c);
            lane.Deferred.Clear();
        }
        return finished;
    }

    // A lane: sweeps until a sweep traces nothing (every pending block traced) or too little.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    private static void MarkLaneJob(int index)
    {
        MarkLane me = s_markLanes[index];
        me.Bytes = 0;
        int lanes = s_markLanes.Length;
        while (true)
        {
            int sweep = Volatile.Read(ref s_sweepNumber);
            me.Traced = 0;
            for (int i; (i = Interlocked.Increment(ref s_sweepNext) - 1) < s_slabs.Length;)
                SweepSlab(me, s_slabs[i]);
            Interlocked.Add(ref s_sweepTraced, me.Traced);
            if (Interlocked.Increment(ref s_sweepArrived) == lanes)
            {
                // The last lane of this sweep decides whether there is another.
                long traced = s_sweepTraced;
                s_sweepsOver = traced < SweepMinBlocks; // none: nothing is pending; a few: the serial trace takes them
                s_sweepTraced = 0;
                s_sweepArrived = 0;
                s_sweepNext = 0;
                Volatile.Write(ref s_sweepNumber, sweep + 1);
            }
            else
            {
                var spin = new SpinWait();
                while (Volatile.Read(ref s_sweepNumber) == sweep)
                {
                    if (ScanWorkers.Failed)
                        return;
                    spin.SpinOnce(sleep1Threshold: -1);
                }
            }
            if (s_sweepsOver)
                return;
        }
    }

    // One slab of a sweep: each word's pending blocks that are not gray yet, again until there are none (a block may
    // make a later one in its own word pending). Pending bits stay set for the rest of the round, so that a reference
    // whose atomic or finds the bit clear is the block's first (see ReferenceKmemOnLane).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    private static void SweepSlab(MarkLane me, uint unit)
    {
        int cls = PageMap.SlabClassOfUnit(unit);
        uint words = (SizeClasses.BlocksPerSlab(cls) + 63) / 64;
        ulong* pending = Bits(unit, Pending), gray = Bits(unit, Gray);
        for (uint w = 0; w < words; w++)
        {
            ulong todo;
            while ((todo = Volatile.Read(ref pending[w]) & ~Volatile.Read(ref gray[w])) != 0)
                ScanPendingWord(me, unit, cls, w, todo);
        }
    }

    // Scans the blocks of one word of a slab that are pending and not gray: free slots lose their pending bit (a stale
    // word set it), the others are made gray, and those gray now for the first time scanned unless not to be (no-scan,
    // ignored).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    private static void ScanPendingWord(MarkLane me, uint unit, int cls, uint w, ulong todo)
    {
        byte* meta = SlabMeta.Of(unit);
        uint first = w * 64, n = SizeClasses.BlocksPerSlab(cls), size = SizeClasses.SizeOf(cls);
        ulong live = todo & Owned(meta, first, n);
        if (live != todo)
            Interlocked.And(ref *(long*)&Bits(unit, Pending)[w], ~(long)(todo & ~live));
        if (live == 0)
            return;
        ulong fresh = live & ~(ulong)Interlocked.Or(ref *(long*)&Bits(unit, Gray)[w], (long)live);
        fresh &= SlabMeta.StateMask(meta, first, (byte)(LeakState.NoScan | LeakState.Black), 0);
        byte* blocks = KmemMap.UnitAddress(unit);
        // Counted here and added once: the lanes' objects may share a cache line, which a write a block would bounce.
        long bytes = 0;
        me.Traced += BitOperations.PopCount(fresh);
        for (; fresh != 0; fresh &= fresh - 1)
        {
            uint slot = first + (uint)BitOperations.TrailingZeroCount(fresh);
            ulong next = fresh & (fresh - 1);
            if (next != 0 && Sse.IsSupported) // the next block's memory while this one is scanned
                Sse.Prefetch0(blocks + (nuint)(first + (uint)BitOperations.TrailingZeroCount(next)) * size);
            byte* p = blocks + (nuint)slot * size;
            // The area lists only change under the scan lock, which this scan holds: every lane may read them.
            if (s_anySlabAreas && AreasOf(unit, slot, (nuint)(p - KmemMap.Base)) is { } areas)
            {
                foreach ((nuint off, nuint len) in areas)
                {
                    nuint length = Math.Min(len, size - off);
                    bytes += (long)length;
                    ScanWordsOnLane(me, p + off, length, unit, slot);
                }
            }
            else
            {
                bytes += size;
                ScanWordsOnLane(me, p, size, unit, slot);
            }
        }
        me.Bytes += bytes;
    }

    // The words of a block (or of an area of one) that may refer to something, eight at a time where vectors allow: the
    // bounds are compared in vector registers, and the few words that pass are looked up one by one.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    private static void ScanWordsOnLane(MarkLane me, byte* start, nuint length, uint unit, uint slot)
    {
        nuint kmemBase = (nuint)KmemMap.Base, kmemSize = KmemMap.Size;
        nuint foreignMin = ~s_foreignMinC, foreignSpan = ~s_foreignSpanC, physMin = ~s_physMinC, physSpan = ~s_physSpanC;
        nuint w = ((nuint)start + 7) & ~(nuint)7, end = (nuint)start + length;
        if (Vector256.IsHardwareAccelerated && sizeof(nuint) == sizeof(ulong) && (foreignSpan | physSpan) == 0)
        {
            // No foreign or physical objects registered (the usual case): kmem_map's bounds are the only ones to test.
            Vector256<ulong> kb = Vector256.Create((ulong)kmemBase), ks = Vector256.Create((ulong)kmemSize);
            for (; w + 64 <= end; w += 64)
            {
                uint any = Vector256.LessThan(Vector256.Load((ulong*)w) - kb, ks).ExtractMostSignificantBits()
                    | Vector256.LessThan(Vector256.Load((ulong*)w + 4) - kb, ks).ExtractMostSignificantBits() << 4;
                for (; any != 0; any &= any - 1)
                    ReferenceKmemOnLane(me, ((nuint*)w)[BitOperations.TrailingZeroCount(any)], unit, slot);
            }
        }
        else if (Vector256.IsHardwareAccelerated && sizeof(nuint) == sizeof(ulong))
        {
            for (; w + 64 <= end; w += 64)
            {
                uint any = Candidates(Vector256.Load((ulong*)w), kmemBase, kmemSize, foreignMin, foreignSpan, physMin, physSpan)
                    | Candidates(Vector256.Load((ulong*)w + 4), kmemBase, kmemSize, foreignMin, foreignSpan, physMin, physSpan) << 4;
                for (; any != 0; any &= any - 1)
                {
                    nuint v = ((nuint*)w)[BitOperations.TrailingZeroCount(any)];
                    if (v - kmemBase < kmemSize)
                        ReferenceKmemOnLane(me, v, unit, slot);
                    else
                        me.Deferred.Add(~(ulong)v);
                }
            }
        }
        for (; w + 8 <= end; w += 8)
        {
            nuint v = *(nuint*)w;
            if (v - kmemBase < kmemSize)
                ReferenceKmemOnLane(me, v, unit, slot);
            else if (v - foreignMin < foreignSpan || v - physMin < physSpan)
                me.Deferred.Add(~(ulong)v);
        }
    }

    // A bit for each of four words that lies in kmem_map, a foreign object's span or a physical object's.
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // the body of the scan's inner loop
    private static uint Candidates(Vector256<ulong> v, nuint kmemBase, nuint kmemSize, nuint foreignMin, nuint foreignSpan,
        nuint physMin, nuint physSpan) =>
        (Vector256.LessThan(v - Vector256.Create((ulong)kmemBase), Vector256.Create((ulong)kmemSize))
            | Vector256.LessThan(v - Vector256.Create((ulong)foreignMin), Vector256.Create((ulong)foreignSpan))
            | Vector256.LessThan(v - Vector256.Create((ulong)physMin), Vector256.Create((ulong)physSpan))).ExtractMostSignificantBits();

    // ReferenceKmem for a lane: a slab block that is neither gray nor pending becomes pending (an atomic or); everything
    // else is kept for the serial path.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ReferenceKmemOnLane(MarkLane me, nuint v, uint selfUnit, uint selfSlot)
    {
        nuint off = v - (nuint)KmemMap.Base;
        int cls = PageMap.SlabClassPlusOne(off) - 1;
        if (cls < 0)
        {
            me.Deferred.Add(~(ulong)v); // large, vmalloc, per-CPU, or a slab not visible yet: ReferenceKmem decides
            return;
        }
        uint unit = (uint)(off >> KmemMap.UnitShift);
        ClassInfo* ci = SizeClasses.Info(cls);
        uint slot = SizeClasses.SlotOf(ci, off & KmemMap.UnitMask);
        if (slot >= ci->BlocksPerSlab || (unit == selfUnit && slot == selfSlot))
            return;
        if (unit >= s_bitmapsReady.Length || !s_bitmapsReady[unit])
            return;
        long bit = 1L << (int)(slot & 63);
        // Gray already (by the serial trace), or pending already: pending bits are only cleared for free slots during a
        // round, so an or that finds the bit clear is the block's first reference.
        if ((Volatile.Read(ref *(long*)&Bits(unit, Gray)[slot >> 6]) & bit) != 0
            || (Interlocked.Or(ref *(long*)&Bits(unit, Pending)[slot >> 6], bit) & bit) != 0)
        {
            // A vmalloc descriptor's further references count for its area (excess_ref): the serial ReferenceKmem does
            // that after the round, seeing the gray bit set.
            if ((SlabMeta.Owner(SlabMeta.Of(unit), slot) & Checks.Redzones.TypeMask) == s_vmAreaIndex)
                me.Deferred.Add(~(ulong)v);
        }
    }
}

// Leak/LeakScanner.Parallel.cs — marking on every core: the gray slab blocks of a pass are traced by all lanes of
// ScanWorkers at once. Each lane keeps its own stack of gray blocks (~(unit << 32 | slot), never an address) and gives
// the older half of it to a shared pool when another lane is idle; gray bits are set atomically, so each block is
// scanned once. A word that refers to anything but a slab block (a large, vmalloc, per-CPU, foreign or physical
// object), or to a gray vmalloc descriptor, is kept (complemented) and followed by the scanning thread afterwards, on
// the serial path with its locks and counts. Scan areas of slab blocks are honoured as on the serial path.
using System.Runtime.CompilerServices;
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

    // Below this many slabs a pass has too little to trace to be worth waking the workers.
    private const int ParallelMinSlabs = 16;
    private const int LaneAhead = 16;      // gray blocks prefetched ahead of the one being scanned (power of two)
    private const int PoolTake = 64;       // blocks an idle lane takes from the pool at a time

    private sealed class MarkLane
    {
        public ulong[] Stack = new ulong[1024];
        public int Count;
        public readonly ulong[] Ahead = new ulong[LaneAhead];
        public readonly List<ulong> Deferred = new(); // ~word, for the scanning thread
        public long Bytes;
    }

    private static MarkLane[] s_markLanes = Array.Empty<MarkLane>();
    private static readonly object s_poolLock = new();
    private static ulong[] s_pool = new ulong[4096];
    private static int s_poolCount;   // written under s_poolLock, read without it
    private static int s_idleLanes;
    private static readonly Action<int> s_markLane = MarkLaneJob;

    private static bool UseParallelMarking() => ParallelMarkingOverride ?? (s_slabs.Length >= ParallelMinSlabs && ScanWorkers.Lanes > 1);

    /// <summary>Traces every block on the work list, and all it reaches through slab blocks, on every lane; then follows
    /// the words the lanes kept for the serial path (which may gray more).</summary>
    private static void MarkSlabsInParallel()
    {
        int lanes = ScanWorkers.Lanes;
        if (s_markLanes.Length != lanes)
        {
            var all = new MarkLane[lanes];
            for (int i = 0; i < lanes; i++)
                all[i] = i < s_markLanes.Length ? s_markLanes[i] : new MarkLane();
            s_markLanes = all;
        }
        lock (s_poolLock)
        {
            if (s_pool.Length < s_slabWork.Count)
                s_pool = new ulong[Math.Max(s_slabWork.Count, s_pool.Length * 2)];
            int n = 0;
            while (s_slabWork.TryPop(out ulong packed))
                s_pool[n++] = packed;
            s_poolCount = n;
        }
        foreach (MarkLane lane in s_markLanes)
            lane.Deferred.Clear(); // also what a failed round left
        s_idleLanes = 0;
        ParallelRounds++;
        ScanWorkers.Run(s_markLane);
        foreach (MarkLane lane in s_markLanes)
        {
            s_bytesScanned += lane.Bytes;
            foreach (ulong c in lane.Deferred)
                ReferenceWord((nuint)~c);
            lane.Deferred.Clear();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    private static void MarkLaneJob(int index)
    {
        MarkLane me = s_markLanes[index];
        me.Count = 0;
        me.Bytes = 0;
        int lanes = s_markLanes.Length;
        int first = 0, ahead = 0;
        while (true)
        {
            // Keep up to LaneAhead blocks in flight: taken off the stack and prefetched, scanned in that order.
            while (ahead < LaneAhead && me.Count > 0)
            {
                ulong next = me.Stack[--me.Count];
                Prefetch(~next);
                me.Ahead[(first + ahead++) & (LaneAhead - 1)] = next;
            }
            if (ahead == 0)
            {
                if (!TakeFromPool(me) && !WaitForWork(me, lanes))
                    return;
                continue;
            }
            ulong packed = ~me.Ahead[first];
            first = (first + 1) & (LaneAhead - 1);
            ahead--;
            if (me.Count >= 2 && Volatile.Read(ref s_idleLanes) > 0 && Volatile.Read(ref s_poolCount) == 0)
                GiveToPool(me);
            ScanSlabOnLane(me, (uint)(packed >> 32), (uint)packed);
        }
    }

    // Idle: wait until the pool has blocks (true, some taken) or every lane is idle with the pool empty (false: done).
    private static bool WaitForWork(MarkLane me, int lanes)
    {
        Interlocked.Increment(ref s_idleLanes);
        var spin = new SpinWait();
        while (true)
        {
            if (Volatile.Read(ref s_poolCount) > 0)
            {
                Interlocked.Decrement(ref s_idleLanes);
                if (TakeFromPool(me))
                    return true;
                Interlocked.Increment(ref s_idleLanes);
            }
            if (Volatile.Read(ref s_idleLanes) == lanes || ScanWorkers.Failed)
                return false;
            spin.SpinOnce(sleep1Threshold: -1);
        }
    }

    private static bool TakeFromPool(MarkLane me)
    {
        if (Volatile.Read(ref s_poolCount) == 0)
            return false;
        lock (s_poolLock)
        {
            int n = Math.Min(s_poolCount, PoolTake);
            if (n == 0)
                return false;
            Reserve(me, n);
            Array.Copy(s_pool, s_poolCount - n, me.Stack, me.Count, n);
            me.Count += n;
            Volatile.Write(ref s_poolCount, s_poolCount - n);
            return true;
        }
    }

    // The older half of the stack (deepest in a depth-first trace: the largest unexplored parts) goes to the pool.
    private static void GiveToPool(MarkLane me)
    {
        int give = me.Count / 2;
        lock (s_poolLock)
        {
            if (s_pool.Length < s_poolCount + give)
                Array.Resize(ref s_pool, Math.Max(s_poolCount + give, s_pool.Length * 2));
            Array.Copy(me.Stack, 0, s_pool, s_poolCount, give);
            Volatile.Write(ref s_poolCount, s_poolCount + give);
        }
        Array.Copy(me.Stack, give, me.Stack, 0, me.Count - give);
        me.Count -= give;
    }

    private static void Reserve(MarkLane me, int more)
    {
        if (me.Count + more > me.Stack.Length)
            Array.Resize(ref me.Stack, Math.Max(me.Count + more, me.Stack.Length * 2));
    }

    // ScanSlab for a lane: a live block that may be scanned, its words looked at with the bounds in registers.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    private static void ScanSlabOnLane(MarkLane me, uint unit, uint slot)
    {
        byte* meta = SlabMeta.Of(unit);
        if (SlabMeta.Owner(meta, slot) == 0)
        {
            // A free slot grayed by a stale word: as ScanSlab, the bit goes.
            Interlocked.And(ref *(long*)&Bits(unit, Gray)[slot >> 6], ~(1L << (int)(slot & 63)));
            return;
        }
        if (((LeakState)SlabMeta.Leak(meta, slot) & (LeakState.NoScan | LeakState.Black)) != 0)
            return;
        uint size = SizeClasses.SizeOf(PageMap.SlabClassOfUnit(unit));
        byte* p = KmemMap.UnitAddress(unit) + (nuint)slot * size;
        // The area lists only change under the scan lock, which this scan holds: every lane may read them.
        if (s_anySlabAreas && AreasOf(unit, slot, (nuint)(p - KmemMap.Base)) is { } areas)
        {
            foreach ((nuint off, nuint len) in areas)
                ScanWordsOnLane(me, p + off, Math.Min(len, size - off), unit, slot);
            return;
        }
        ScanWordsOnLane(me, p, size, unit, slot);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.AggressiveInlining)]
    private static void ScanWordsOnLane(MarkLane me, byte* start, nuint length, uint unit, uint slot)
    {
        me.Bytes += (long)length;
        nuint kmemBase = (nuint)KmemMap.Base, kmemSize = KmemMap.Size;
        nuint foreignMin = ~s_foreignMinC, foreignSpan = ~s_foreignSpanC, physMin = ~s_physMinC, physSpan = ~s_physSpanC;
        for (nuint w = ((nuint)start + 7) & ~(nuint)7, end = (nuint)start + length; w + 8 <= end; w += 8)
        {
            nuint v = *(nuint*)w;
            if (v - kmemBase < kmemSize)
                ReferenceKmemOnLane(me, v, unit, slot);
            else if (v - foreignMin < foreignSpan || v - physMin < physSpan)
                me.Deferred.Add(~(ulong)v);
        }
    }

    // ReferenceKmem for a lane: a slab block is grayed here (an atomic test-and-set of its bit); everything else is kept
    // for the serial path.
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
        ref long w = ref *(long*)&Bits(unit, Gray)[slot >> 6];
        long bit = 1L << (int)(slot & 63);
        if ((Volatile.Read(ref w) & bit) != 0 || (Interlocked.Or(ref w, bit) & bit) != 0)
        {
            // Gray already. A vmalloc descriptor's further references count for its area (excess_ref): the serial
            // ReferenceKmem does that, seeing the bit set.
            if ((SlabMeta.Owner(SlabMeta.Of(unit), slot) & Checks.Redzones.TypeMask) == s_vmAreaIndex)
                me.Deferred.Add(~(ulong)v);
            return;
        }
        Reserve(me, 1);
        me.Stack[me.Count++] = ~(((ulong)unit << 32) | slot);
    }
}

// Leak/LeakScanner.cs — one kmemleak scan: whiten, mark from the roots (registered roots and the process's own memory,
// see ProcessRoots) through a gray work list (aligned words, a quick range reject, O(1) page-map lookup for Kmem memory
// and a sorted table for foreign ranges), give changed blocks a second chance (CRC32C), confirm candidates with more
// marking passes, then decide what is unreferenced. It reads the allocator's tables and never calls into its hot paths.
// Everything it keeps between steps holds addresses complemented or as offsets, and its bitmaps live in the slab side
// tables, so the scan of the process never finds the detector's own bookkeeping.
using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using Kmem.Caches;
using Kmem.Pages;
using Kmem.Platform;
using Kmem.Slabs;

namespace Kmem.Leak;

/// <summary>An object the detector tracks: a slab block (unit, slot) or a record.</summary>
internal readonly record struct TrackedObject(LeakRecord? Record, uint Unit, uint Slot);

/// <summary>What a scan found about one unreferenced object. A struct: a scan's findings are one array, which the
/// program's GC moves as one object instead of one per leak.</summary>
internal struct Unreferenced
{
    public required TrackedObject Object;
    public required nuint Offset;     // kmem_map offset, ~address (foreign) or ~physical address
    public required RecordKind? Kind; // null: slab block
    public required nuint Size;
    public required ushort TypeIndex;
    public required uint Context;
    public required uint Thread;
    public required uint Stamp;
    public required int BornBeforeScan; // index of the first scan known to start after the birth
    public required long BirthMs;       // lower bound of the birth time, ms since start
    public required uint Crc;
    public bool Direct;
    public bool New;
    public byte Front;                // bytes before the caller's address (a DIAGNOSTIC block's front redzone)
}

internal sealed class ScanOutcome
{
    public required List<Unreferenced> Unreferenced;   // reported and unreferenced now, in allocation order
    public required int NewLeaks;
    public required long Objects;
    public required long BytesScanned;
    public required TimeSpan Duration;
    public required long ProcessRootBytes;             // read from the process's memory, all passes
    public required long ProcessRootBytesUnreadable;   // listed as roots but unreadable when read (unmapped meanwhile)
    public required int ProcessRootRanges;             // in the first pass
    public required TimeSpan ProcessRootTime;
    public required TimeSpan MarkTime;
    public required TimeSpan ClassifyTime;
    public required int Passes;
    public required bool ProcessRootsRead;             // process roots asked for and read in every pass
    public required string? ProcessRootsFailure;       // why they could not be read, if so
}

/// <summary>How a scan finds its roots (besides registered ones).</summary>
internal readonly record struct RootOptions(bool Process, bool Stacks, nuint CallerStackComplement);

internal static unsafe partial class LeakScanner
{
    private static readonly long s_start = Environment.TickCount64;
    public static long NowMs => Environment.TickCount64 - s_start;

    // Scan history: start time and each thread's sequence number at that start (birth bounds).
    private sealed record ScanMark(long StartMs, Dictionary<uint, uint> Watermarks);
    private static readonly List<ScanMark> s_history = new();
    private const int HistoryLength = 64;
    private static readonly Dictionary<uint, uint> s_deadThreads = new(); // final sequence of threads that ended

    // Per-scan state. Slab blocks are (unit, slot) pairs; their gray bits live in one bitmap per slab unit.
    // Slab bitmaps: which one of the four in each slab's side tables (pending: parallel marking's work, see
    // LeakScanner.Parallel).
    private const int Gray = 0, White = 1, WhiteAgain = 2, Pending = 3;
    private static bool[] s_bitmapsReady = Array.Empty<bool>(); // by unit: committed and part of this scan
    private static uint[] s_slabs = Array.Empty<uint>();
    private static readonly Stack<ulong> s_slabWork = new();     // ~(unit << 32 | slot)
    private static readonly Stack<LeakRecord> s_recordWork = new();
    private static List<LeakRecord> s_records = new();
    private static nuint[] s_foreignKeys = Array.Empty<nuint>(); // ~start, ascending
    private static LeakRecord[] s_foreignRecords = Array.Empty<LeakRecord>();
    // Bounds of all foreign / physical objects: the lowest start and the span, complemented (0 span = none).
    private static nuint s_foreignMinC = ~(nuint)0, s_foreignSpanC = ~(nuint)0;
    private static LeakRecord[] s_physRecords = Array.Empty<LeakRecord>();
    private static nuint s_physMinC = ~(nuint)0, s_physSpanC = ~(nuint)0;
    private static long s_bytesScanned;
    private static RootOptions s_roots;
    private static long s_rootBytes, s_rootSkipped, s_rootTicks, s_markTicks;
    private static int s_rootRanges, s_passes;
    private static readonly List<ulong> s_rootWords = new(); // ~word, from the process roots
    private static string? s_rootsFailed;
    private static bool s_copyForeign; // foreign memory is read through the fault-free copy (it works in this process)
    private static uint s_curUnit = uint.MaxValue, s_curSlot;
    private static LeakRecord? s_curRecord;
    private static int s_vmAreaIndex;
    private const int ConfirmationPasses = 2;
    private static bool s_inScan;

    /// <summary>Slab blocks' scan areas and excess references, by kmem_map offset (set through the API).</summary>
    public static readonly Dictionary<nuint, SlabAreaList> SlabAreas = new();
    private static bool s_anySlabAreas; // SlabAreas is not empty (taken when a scan starts)

    /// <summary>The scan areas of one slab block, with the birth (context, stamp) of the block they were given for: a
    /// later block in the same slot does not inherit them (the entry is stale, and dropped when the next scan starts).</summary>
    internal sealed class SlabAreaList(uint context, uint stamp)
    {
        public readonly uint Context = context, Stamp = stamp;
        public readonly List<(nuint Offset, nuint Length)> Areas = new();

        public bool IsFor(byte* meta, uint slot) =>
            SlabMeta.Owner(meta, slot) != 0 && SlabMeta.Site(meta, slot) == Context && SlabMeta.Stamp(meta, slot) == Stamp;
    }

    /// <summary>The scan areas of the live block in (<paramref name="unit"/>, <paramref name="slot"/>), starting at
    /// kmem_map offset <paramref name="offset"/>; null when it was given none (scanned whole).</summary>
    internal static List<(nuint Offset, nuint Length)>? AreasOf(uint unit, uint slot, nuint offset) =>
        SlabAreas.Count > 0 && SlabAreas.TryGetValue(offset, out SlabAreaList? a) && a.IsFor(SlabMeta.Of(unit), slot) ? a.Areas : null;

    /// <summary>Records the final sequence of a thread that ended (called when its cache retires).</summary>
    public static void ThreadEnded(uint ordinal, uint sequence)
    {
        lock (s_deadThreads)
            s_deadThreads[ordinal] = sequence;
    }

    public static ScanOutcome Run(int minAgeMs, int unrefScans, RootOptions roots, Func<bool> cancelled)
    {
        s_summed.Clear();
        s_recordSums.Clear();
        try
        {
            return RunCore(minAgeMs, unrefScans, roots, cancelled);
        }
        catch
        {
            // A scan that fails drops the checksums it stored, so that what changed before it still gets its second chance.
            ForgetSums(s_summed);
            foreach ((LeakRecord r, uint crc) in s_recordSums)
                r.Crc = crc;
            throw;
        }
        finally
        {
            Empty(s_summed);
            s_recordSums.Clear();
            // Also after a failure: lookups go back to the locked tables, and nothing of this scan is kept.
            s_inScan = false;
            s_contexts = null;
            s_records = new();
            s_slabWork.Clear();
            s_recordWork.Clear();
            s_rootWords.Clear();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    private static ScanOutcome RunCore(int minAgeMs, int unrefScans, RootOptions roots, Func<bool> cancelled)
    {
        long t0 = Stopwatch.GetTimestamp();
        s_bytesScanned = 0;
        s_roots = roots;
        s_rootBytes = s_rootSkipped = s_rootTicks = s_markTicks = 0;
        s_rootRanges = -1;
        s_passes = 0;
        s_rootsFailed = null;
        ScanMark mark = BeginScan();
        int scanIndex = s_history.Count - 1;

        Collect();
        s_copyForeign = RootReader.CanCopy(OsPages.Process);
        s_inScan = true;
        HashSet<LeakRecord> recordWhite = Mark(secondChance: true, White);
        // Confirmation before anything new is reported: more marking passes (up to ConfirmationPasses); only what stays
        // unreferenced through all of them is a candidate (a pointer that moved between two holders while one pass read
        // them is found by another).
        for (int pass = 0; pass < ConfirmationPasses && WouldReportNew(recordWhite, minAgeMs, unrefScans, mark, scanIndex) && !cancelled(); pass++)
        {
            HashSet<LeakRecord> recordsAgain = Mark(secondChance: false, WhiteAgain);
            foreach (uint unit in s_slabs)
            {
                ulong* w = Bits(unit, White), again = Bits(unit, WhiteAgain);
                for (int k = 0, words = Words(unit); k < words; k++)
                    w[k] &= again[k];
            }
            recordWhite.IntersectWith(recordsAgain);
        }
        long tDecide = Stopwatch.GetTimestamp();

        // Room for every candidate at once: the list is large (a struct per leak) and growing it would copy it.
        long candidates = recordWhite.Count;
        foreach (uint unit in s_slabs)
        {
            ulong* white = Bits(unit, White);
            for (int k = 0, words = Words(unit); k < words; k++)
                candidates += BitOperations.PopCount(white[k]);
        }
        var findings = new FindingsBuilder(s_classifiedAreas == s_areasVersion ? s_classified : null, s_classifiedPositions,
            (int)Math.Min(candidates, Array.MaxLength));
        int newLeaks = 0;
        long objects = 0;
        // A candidate's birth decides whether it counts yet (not born during this scan, old enough), then its count of
        // scans unreferenced goes up; reported when the count reaches the threshold. False: not reported (yet).
        [MethodImpl(MethodImplOptions.AggressiveOptimization)] // a call per white object, a few scans a run: no tiering
        bool Ripe(ref LeakState state, uint thread, uint stamp, out int bornBefore, out bool isNew)
        {
            isNew = false;
            bornBefore = FirstScanAfterBirth(thread, stamp);
            if (bornBefore < 0 || bornBefore > scanIndex)
                return false; // allocated during this scan
            if (s_history[bornBefore].StartMs + minAgeMs > mark.StartMs)
                return false; // too young (measured from this scan's start)
            int unref = LeakStates.Unref(state) + 1;
            state = LeakStates.WithUnref(state, unref);
            if (unref < unrefScans)
                return false;
            isNew = (state & LeakState.Reported) == 0;
            if (isNew)
            {
                state |= LeakState.Reported;
                newLeaks++;
            }
            return true;
        }
        uint[] contexts = Diagnostics.AllocContexts.ThreadOrdinals(); // context → thread ordinal, for this scan
        // Slab blocks a bitmap word (64 slots) at a time: which slots hold a block (owner column), which of those are
        // white (candidates, decided one by one) and which referenced blocks carry an unreferenced count to clear.
        foreach (uint unit in s_slabs)
        {
            byte* meta = SlabMeta.Of(unit);
            int cls = PageMap.Entry(unit)->Class;
            uint n = SizeClasses.BlocksPerSlab(cls), size = SizeClasses.SizeOf(cls);
            ulong* white = Bits(unit, White);
            for (uint first = 0; first < n; first += 64)
            {
                ulong owned = Owned(meta, first, n);
                if (owned == 0)
                    continue;
                objects += BitOperations.PopCount(owned);
                ulong white64 = owned & white[first >> 6];
                // Referenced (most blocks): a count of scans unreferenced goes back to 0, on the state bytes alone.
                for (ulong counted = ~SlabMeta.StateMask(meta, first, (byte)LeakState.UnrefMask, 0) & owned & ~white64; counted != 0; counted &= counted - 1)
                {
                    ref LeakState state = ref Unsafe.As<byte, LeakState>(ref SlabMeta.Leak(meta, first + (uint)BitOperations.TrailingZeroCount(counted)));
                    if ((state & (LeakState.Black | LeakState.Root)) == 0)
                        state = LeakStates.WithUnref(state, 0);
                }
                for (; white64 != 0; white64 &= white64 - 1)
                {
                    uint slot = first + (uint)BitOperations.TrailingZeroCount(white64);
                    ref LeakState state = ref Unsafe.As<byte, LeakState>(ref SlabMeta.Leak(meta, slot));
                    if ((state & (LeakState.Black | LeakState.Root)) != 0)
                        continue;
                    uint context = SlabMeta.Site(meta, slot), stamp = SlabMeta.Stamp(meta, slot);
                    uint thread = context < contexts.Length ? contexts[context] : Diagnostics.AllocContexts.ThreadOrdinalOf(context);
                    if (!Ripe(ref state, thread, stamp, out int bornBefore, out bool isNew))
                        continue;
                    Unreferenced u = DescribeSlab(meta, unit, slot, size, thread, stamp, bornBefore);
                    u.New = isNew;
                    findings.Add(u);
                }
            }
        }
        foreach (LeakRecord r in s_records)
        {
            objects++;
            ref LeakState state = ref r.State;
            if ((state & (LeakState.Black | LeakState.Root)) != 0)
                continue;
            if (!recordWhite.Contains(r))
            {
                if ((state & LeakState.UnrefMask) != 0)
                    state = LeakStates.WithUnref(state, 0);
                continue;
            }
            if (!Ripe(ref state, r.Thread, r.Stamp, out int bornBefore, out bool isNew))
                continue;
            Unreferenced u = DescribeRecord(r, bornBefore);
            u.New = isNew;
            findings.Add(u);
        }
        s_contexts = null;
        List<Unreferenced> found = findings.Finish(out bool unchanged);
        int[]? positions = s_classifiedPositions; // an unchanged list keeps its positions
        s_findingsUnchanged = unchanged;
        FindingsUnchanged += unchanged ? 1 : 0;
        if (unchanged)
        {
            ClassificationsReused++; // the previous scan's list: in birth order and classified already
        }
        else
        {
            if (found.Count < found.Capacity / 2)
                found.TrimExcess(); // kept until the next scan: no room for candidates that were too young
            positions = SortByBirth(found);
            if (!ReuseClassification(found))
                Classify(found);
        }
        (s_classified, s_classifiedPositions) = (found, positions); // together: the positions describe this list
        s_classifiedAreas = s_areasVersion;
        s_inScan = false;
        s_records = new();
        long tEnd = Stopwatch.GetTimestamp();
        return new ScanOutcome
        {
            Unreferenced = found,
            NewLeaks = newLeaks,
            Objects = objects,
            BytesScanned = s_bytesScanned,
            Duration = Stopwatch.GetElapsedTime(t0, tEnd),
            ProcessRootBytes = s_rootBytes,
            ProcessRootBytesUnreadable = s_rootSkipped,
            ProcessRootRanges = Math.Max(0, s_rootRanges),
            ProcessRootsRead = s_roots.Process,
            ProcessRootsFailure = s_rootsFailed,
            ProcessRootTime = Stopwatch.GetElapsedTime(0, s_rootTicks),
            MarkTime = Stopwatch.GetElapsedTime(0, s_markTicks),
            ClassifyTime = Stopwatch.GetElapsedTime(tDecide, tEnd),
            Passes = s_passes,
        };
    }

    // Findings lists of earlier scans, each with the results that read it (a steady scan's result shares the list of the
    // scan before). While scans keep finding something new, a list none of whose results is alive any more (nobody can
    // read it) lends its memory to a later scan's findings: 100,000 leaks are 7 MB, and fresh pages for them cost a scan
    // ~5 ms of page faults (the forced GC gives freed memory back to the OS). Once a scan finds what the one before did,
    // such spare lists are let go: kept, they would only be read as roots by every scan.
    private static readonly List<(List<WeakReference<object>> Readers, List<Unreferenced> List)> s_oldFindings = new();
    private static bool s_findingsUnchanged; // the last scan's findings were the previous scan's list

    /// <summary>Scans whose findings went into an earlier scan's list, and scans whose findings were the previous scan's
    /// list itself (for tests).</summary>
    internal static long FindingsReused, FindingsUnchanged;

    /// <summary>The findings list of the scan that made <paramref name="reader"/>, kept for reuse once every result that
    /// reads it is collected (called under the scan lock).</summary>
    public static void FindingsReadBy(List<Unreferenced> list, object reader)
    {
        if (s_findingsUnchanged)
            s_oldFindings.RemoveAll(e => !ReferenceEquals(e.List, list) && !e.Readers.Exists(static r => r.TryGetTarget(out _)));
        foreach ((List<WeakReference<object>> readers, List<Unreferenced> old) in s_oldFindings)
        {
            if (ReferenceEquals(old, list))
            {
                readers.RemoveAll(static r => !r.TryGetTarget(out _)); // a steady state adds a reader every scan
                readers.Add(new(reader));
                return;
            }
        }
        s_oldFindings.Add((new() { new(reader) }, list));
    }

    private static List<Unreferenced> NewFindings(int capacity)
    {
        for (int i = s_oldFindings.Count - 1; i >= 0; i--)
        {
            (List<WeakReference<object>> readers, List<Unreferenced> list) = s_oldFindings[i];
            if (readers.Exists(static r => r.TryGetTarget(out _)) || ReferenceEquals(list, s_classified))
                continue; // still read, or the previous scan's (compared with this one's)
            s_oldFindings.RemoveAt(i);
            if (list.Capacity >= capacity && list.Capacity / 2 <= capacity)
            {
                list.Clear();
                FindingsReused++;
                return list;
            }
        }
        return new List<Unreferenced>(capacity);
    }

    /// <summary>
    /// A scan's findings, added in scan order. In kmemleak's steady state a scan finds exactly what the previous one did,
    /// entry for entry; the previous list (never changed once its scan ended) is then this scan's too, compared instead of
    /// written (100,000 leaks: 7 MB not written, and one list alive instead of two for the next scans to read as roots).
    /// At the first difference the entries that matched are copied into a list of this scan's own.
    /// </summary>
    private struct FindingsBuilder(List<Unreferenced>? previous, int[]? positions, int capacity)
    {
        private List<Unreferenced>? _list;
        private int _matched;

        // The previous scan's k-th object in scan order (its list is in birth order).
        private readonly ref readonly Unreferenced Previous(int k) =>
            ref CollectionsMarshal.AsSpan(previous)[positions is null ? k : positions[k]];

        [MethodImpl(MethodImplOptions.AggressiveOptimization)] // once per leak of a scan: no tiering
        public void Add(in Unreferenced u)
        {
            if (_list is null)
            {
                if (previous is not null && _matched < previous.Count && Same(u, Previous(_matched)))
                {
                    _matched++;
                    return;
                }
                Diverge();
            }
            _list!.Add(u);
        }

        /// <summary>The findings; <paramref name="unchanged"/> when they are the previous scan's list.</summary>
        public List<Unreferenced> Finish(out bool unchanged)
        {
            unchanged = _list is null && previous is not null && _matched == previous.Count;
            if (unchanged)
                return previous!;
            if (_list is null)
                Diverge();
            return _list!;
        }

        private void Diverge()
        {
            _list = NewFindings(capacity);
            for (int k = 0; k < _matched; k++)
            {
                // Sorted with this scan's entries, so its interval index must be this scan's (the history may have
                // been thinned since it was found); its birth time bound stays the earlier, tighter one.
                Unreferenced u = Previous(k);
                u.BornBeforeScan = FirstScanAfterBirth(u.Thread, u.Stamp);
                _list.Add(u);
            }
        }

        // Everything a scan says of an object but Direct (which the classification decides, the same for the same
        // objects with the same contents: see ReuseClassification) and its birth bounds; an unknown checksum never
        // matches. The same allocation (same place, context and stamp) was born when it was: its bounds can only get
        // looser as the remembered scans are thinned (an index into them shifts each time), and the earlier, tighter
        // ones stay true. A list kept whole keeps the order it was sorted in; entries copied into a new list get this
        // scan's interval index first (Diverge).
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static bool Same(in Unreferenced a, in Unreferenced b) =>
            a.Offset == b.Offset && a.Object.Unit == b.Object.Unit && a.Object.Slot == b.Object.Slot
            && ReferenceEquals(a.Object.Record, b.Object.Record) && a.Kind == b.Kind && a.Size == b.Size
            && a.TypeIndex == b.TypeIndex && a.Context == b.Context && a.Thread == b.Thread && a.Stamp == b.Stamp
            && a.Crc == b.Crc && a.Crc != LeakStates.NoCrc && a.New == b.New && a.Front == b.Front;
    }

    // The previous scan's findings, classified, and the scan-area version they were classified with.
    private static List<Unreferenced>? s_classified;
    private static int[]? s_classifiedPositions; // where in s_classified its i-th object in scan order is (null: at i)
    private static int s_classifiedAreas;
    private static int s_areasVersion;

    /// <summary>Scans that reused the previous classification (for tests).</summary>
    internal static long ClassificationsReused;

    /// <summary>A scan area was added: what an object's words refer to may have changed.</summary>
    public static void AreasChanged() => s_areasVersion++;

    // Direct or indirect depends only on the found objects' words (with records' scan areas). When this scan found exactly
    // the objects the previous one did, each with the checksum the previous one saw (an object whose contents changed
    // is gray for a scan, so it would not be here), the previous classification still holds: kmemleak's steady state,
    // the same leaks scan after scan. Anything else is classified afresh.
    private static bool ReuseClassification(List<Unreferenced> found)
    {
        List<Unreferenced>? before = s_classified;
        if (before is null || before.Count != found.Count || s_classifiedAreas != s_areasVersion)
            return false;
        Span<Unreferenced> now = CollectionsMarshal.AsSpan(found);
        ReadOnlySpan<Unreferenced> then = CollectionsMarshal.AsSpan(before);
        for (int i = 0; i < now.Length; i++)
            if (now[i].Offset != then[i].Offset || now[i].Kind != then[i].Kind || !ReferenceEquals(now[i].Object.Record, then[i].Object.Record)
                || now[i].Crc != then[i].Crc || now[i].Crc == LeakStates.NoCrc)
                return false;
        for (int i = 0; i < now.Length; i++)
            now[i].Direct = then[i].Direct;
        ClassificationsReused++;
        return true;
    }

    // Allocation order: the scan interval of birth, then thread, then the thread's sequence number (one packed key).
    // Returns where each object (in the order it was found, the scan order) went: null when nowhere else.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int[]? SortByBirth(List<Unreferenced> found)
    {
        static ulong Key(in Unreferenced u) =>
            (ulong)Math.Clamp(u.BornBeforeScan + 1, 0, 127) << 57 // −1 (born after every remembered scan) sorts first
            | (ulong)Math.Min(u.Thread, (1u << 25) - 1) << 32 | u.Stamp;
        ReadOnlySpan<Unreferenced> all = CollectionsMarshal.AsSpan(found);
        int i = 1;
        while (i < all.Length && Key(all[i - 1]) <= Key(all[i]))
            i++;
        if (i >= all.Length)
            return null; // slabs are carved in order: often the case
        var keys = new ulong[found.Count];
        for (i = 0; i < keys.Length; i++)
            keys[i] = Key(all[i]);
        var order = new int[keys.Length];
        for (i = 0; i < order.Length; i++)
            order[i] = i;
        Array.Sort(keys, order);
        Unreferenced[] items = found.ToArray();
        var positions = keys.Length == 0 ? null : new int[keys.Length];
        for (i = 0; i < order.Length; i++)
        {
            found[i] = items[order[i]];
            positions![order[i]] = i;
        }
        return positions;
    }

    // ---- birth bounds ----

    private static ScanMark BeginScan()
    {
        var marks = new Dictionary<uint, uint>();
        lock (ThreadCaches.Lock)
        {
            foreach (nint tc in ThreadCaches.LiveUnderLock)
            {
                ThreadHeader* h = ThreadCaches.Header((byte*)tc);
                marks[h->Ordinal] = Volatile.Read(ref h->Sequence);
            }
        }
        lock (s_deadThreads)
            foreach ((uint t, uint seq) in s_deadThreads)
                marks[t] = seq;
        var mark = new ScanMark(NowMs, marks);
        s_history.Add(mark);
        s_watermarks.Clear();
        s_lastThread = uint.MaxValue;
        if (s_history.Count > HistoryLength)
        {
            // Keep the first entry (the oldest bound) and the most recent ones.
            s_history.RemoveAt(1);
        }
        return mark;
    }

    // The first index whose value is ≥ value in an ascending span (its length if none).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // once per candidate of a scan: no tiering
    private static int LowerBound<T>(ReadOnlySpan<T> sorted, T value) where T : System.Numerics.IComparisonOperators<T, T, bool>
    {
        int lo = 0, hi = sorted.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (sorted[mid] < value)
                lo = mid + 1;
            else
                hi = mid;
        }
        return lo;
    }

    // Per thread, its watermark in each remembered scan (0 where it did not exist yet): non-decreasing, so searchable.
    private static readonly Dictionary<uint, uint[]> s_watermarks = new();
    private static uint s_lastThread = uint.MaxValue;
    private static uint[] s_lastWatermarks = Array.Empty<uint>();

    // The index of the first remembered scan that started after the object was born, or −1 if none did.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int FirstScanAfterBirth(uint thread, uint stamp)
    {
        uint[] w;
        if (thread == s_lastThread && s_lastWatermarks.Length == s_history.Count)
        {
            w = s_lastWatermarks;
        }
        else
        {
            if (!s_watermarks.TryGetValue(thread, out w!) || w.Length != s_history.Count)
            {
                w = new uint[s_history.Count];
                for (int i = 0; i < w.Length; i++)
                    w[i] = s_history[i].Watermarks.TryGetValue(thread, out uint v) ? v : 0;
                s_watermarks[thread] = w;
            }
            s_lastThread = thread;
            s_lastWatermarks = w;
        }
        int first = LowerBound<uint>(w, stamp);
        return first < w.Length ? first : -1;
    }

    // ---- collecting and marking ----

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    private static void Collect()
    {
        s_slabs = ClassDepot.AllSlabs();
        Array.Sort(s_slabs); // in address order: parallel marking sweeps them in this order
        // Scan areas of blocks freed since (their slot empty or holding a later block) are dropped.
        foreach ((nuint offset, SlabAreaList areas) in SlabAreas.ToArray())
        {
            uint unit = (uint)(offset >> KmemMap.UnitShift);
            int cls = PageMap.SlabClassPlusOne(offset) - 1;
            if (cls < 0 || !areas.IsFor(SlabMeta.Of(unit), SizeClasses.SlotOf(cls, offset & KmemMap.UnitMask)))
                SlabAreas.Remove(offset);
        }
        s_anySlabAreas = SlabAreas.Count > 0; // the lists change only under the scan lock, which the scan holds
        // Bitmaps live in the side tables from scan to scan (a slab keeps its class for good), committed with them when
        // the slab was made; a slab made after this list was taken is not part of this scan.
        if (s_bitmapsReady.Length != KmemMap.UnitCount)
            s_bitmapsReady = new bool[KmemMap.UnitCount];
        foreach (uint unit in s_slabs)
            s_bitmapsReady[unit] = true;
        s_vmAreaIndex = Heap.VmAreaType.Index;
        var records = new List<LeakRecord>();
        lock (LeakTracking.Lock)
        {
            records.AddRange(LeakTracking.KmemRecords);
            var foreign = new List<LeakRecord>(LeakTracking.ForeignRecords);
            foreign.Sort(static (a, b) => a.Key.CompareTo(b.Key));
            s_foreignRecords = foreign.ToArray();
            s_foreignKeys = foreign.Select(r => r.Key).ToArray();
            (s_foreignMinC, s_foreignSpanC) = Bounds(foreign);
            records.AddRange(foreign);
            s_physRecords = LeakTracking.PhysRecords.ToArray();
            (s_physMinC, s_physSpanC) = Bounds(s_physRecords);
            records.AddRange(s_physRecords);
        }
        s_records = records;
    }

    // The lowest start and the span of records with complemented keys, both complemented; no records: an empty span.
    private static (nuint MinC, nuint SpanC) Bounds(IReadOnlyCollection<LeakRecord> records)
    {
        if (records.Count == 0)
            return (~(nuint)0, ~(nuint)0);
        nuint minC = 0, maxC = ~(nuint)0;
        foreach (LeakRecord r in records)
        {
            minC = Math.Max(minC, r.Key);               // the largest complement is the lowest start
            maxC = Math.Min(maxC, ~(~r.Key + r.Size));  // the smallest complement of an end is the highest end
        }
        return (minC, ~(~maxC - ~minC));
    }

    private static bool InForeign(nuint v) => v - ~s_foreignMinC < ~s_foreignSpanC;

    private static bool InPhys(nuint v) => v - ~s_physMinC < ~s_physSpanC;

    private static ulong* Bits(uint unit, int which) => SlabMeta.Bitmap(SlabMeta.Of(unit), which);

    private const byte RootOrBlack = (byte)(LeakState.Root | LeakState.Black);

    // The slots from first (a multiple of 64) that hold a block, a bit each, none at or past n (the slab's block count).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Owned(byte* meta, uint first, uint n)
    {
        ulong owned = SlabMeta.OwnedMask(meta, first);
        return n - first >= 64 ? owned : owned & ((1UL << (int)(n - first)) - 1);
    }

    // White now: the blocks from slot first on (64) that the marking has not reached and that are neither roots nor ignored.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Unreached(byte* meta, ulong* gray, uint first, uint n) =>
        Owned(meta, first, n) & ~gray[first >> 6] & SlabMeta.StateMask(meta, first, RootOrBlack, 0);

    private static int Words(uint unit) => (int)((SizeClasses.BlocksPerSlab(PageMap.Entry(unit)->Class) + 63) / 64);

    // Whether some candidate would be reported for the first time by this scan (old enough, enough unreferenced scans).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool WouldReportNew(HashSet<LeakRecord> recordWhite, int minAgeMs, int unrefScans, ScanMark mark, int scanIndex)
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        bool Qualifies(TrackedObject o)
        {
            LeakState state = StateOf(o);
            if ((state & LeakState.Reported) != 0 || LeakStates.Unref(state) + 1 < unrefScans)
                return false;
            (uint thread, uint stamp) = BirthOf(o);
            int bornBefore = FirstScanAfterBirth(thread, stamp);
            return bornBefore >= 0 && bornBefore <= scanIndex && s_history[bornBefore].StartMs + minAgeMs <= mark.StartMs;
        }
        foreach (uint unit in s_slabs)
        {
            ulong* w = Bits(unit, White);
            for (int k = 0, words = Words(unit); k < words; k++)
                for (ulong bits = w[k]; bits != 0; bits &= bits - 1)
                    if (Qualifies(new TrackedObject(null, unit, (uint)(k * 64 + BitOperations.TrailingZeroCount(bits)))))
                        return true;
        }
        foreach (LeakRecord r in recordWhite)
            if (Qualifies(new TrackedObject(r, 0, 0)))
                return true;
        return false;
    }

    // One marking pass; returns the white, allocated, non-root objects (the candidates): a bitmap per slab unit and a set.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    private static HashSet<LeakRecord> Mark(bool secondChance, int white)
    {
        long t0 = Stopwatch.GetTimestamp();
        s_passes++;
        foreach (uint unit in s_slabs)
        {
            new Span<ulong>(Bits(unit, Gray), Words(unit)).Clear();
            if (s_pendingDirty)
                new Span<ulong>(Bits(unit, Pending), Words(unit)).Clear(); // left by a failed round
        }
        s_pendingDirty = false;
        foreach (LeakRecord r in s_records)
        {
            r.Count = 0;
            r.Gray = false;
        }
        // Roots: min_count 0 objects (not_leak, clear, registered roots), and physical objects (scanned while mapped).
        foreach (uint unit in s_slabs)
        {
            byte* meta = SlabMeta.Of(unit);
            uint n = SizeClasses.BlocksPerSlab(PageMap.Entry(unit)->Class);
            for (uint first = 0; first < n; first += 64)
                for (ulong roots = Owned(meta, first, n) & SlabMeta.StateMask(meta, first, RootOrBlack, (byte)LeakState.Root);
                     roots != 0; roots &= roots - 1)
                    GraySlab(unit, first + (uint)BitOperations.TrailingZeroCount(roots));
        }
        foreach (LeakRecord r in s_records)
            if ((r.State & LeakState.Black) == 0 && ((r.State & LeakState.Root) != 0 || r.MinCount == 0))
                GrayRecord(r);
        Drain();
        if (s_roots.Process)
        {
            ProcessRootWords();
            Drain();
        }
        if (secondChance)
        {
            // A white block whose contents changed since the last scan is gray for this scan only (kmemleak's rule).
            // The blocks are summed on every lane when marking is (each lane a slab at a time), then grayed here.
            if (UseParallelMarking())
            {
                SumWhiteBlocksInParallel();
            }
            else
            {
                s_changed.Clear();
                try
                {
                    foreach (uint unit in s_slabs)
                        SumWhiteBlocks(unit, s_changed);
                    GrayChanged(s_changed);
                }
                catch
                {
                    ForgetSums(s_changed);
                    throw;
                }
            }
            foreach (LeakRecord r in s_records)
            {
                if (r.Gray || (r.State & (LeakState.Black | LeakState.Root)) != 0)
                    continue;
                uint crc = Checksum(r);
                if (crc != r.Crc)
                {
                    s_recordSums.Add((r, r.Crc));
                    r.Crc = crc;
                    GrayRecord(r);
                }
            }
            Drain();
        }
        foreach (uint unit in s_slabs)
        {
            byte* meta = SlabMeta.Of(unit);
            uint n = SizeClasses.BlocksPerSlab(PageMap.Entry(unit)->Class);
            ulong* gray = Bits(unit, Gray);
            ulong* w = Bits(unit, white);
            for (uint first = 0; first < n; first += 64)
                w[first >> 6] = Unreached(meta, gray, first, n);
        }
        var whiteRecords = new HashSet<LeakRecord>();
        foreach (LeakRecord r in s_records)
            if (!r.Gray && (r.State & (LeakState.Black | LeakState.Root)) == 0 && LeakTracking.IsRegistered(r))
                whiteRecords.Add(r); // (a record unregistered during the scan is freed memory, not a leak)
        s_markTicks += Stopwatch.GetTimestamp() - t0;
        return whiteRecords;
    }

    // Reads the process roots (every pass reads them afresh) and follows each word that may point at a tracked object.
    // If they cannot be read (no /proc, out of file descriptors, reads refused), this scan goes on with the registered
    // roots alone and says why.
    private static void ProcessRootWords()
    {
        long t0 = Stopwatch.GetTimestamp();
        IProcessMemory process = OsPages.Process;
        s_rootWords.Clear();
        long bytes;
        // No GC while the roots are read: a compaction could move an object from a part not yet read into one already
        // read, hiding its pointers from this pass. Best effort: other threads allocating past the budget end it.
        bool noGc = false;
        try
        {
            noGc = GC.TryStartNoGCRegion(1 << 20);
        }
        catch (InvalidOperationException)
        {
            // already in a no-GC region (the program's own)
        }
        try
        {
            List<RootRange> ranges = ProcessRoots.Collect(process, s_roots.Stacks, OsPages.Provider.CurrentThreadId(),
                s_roots.CallerStackComplement, RootReader.WorkerStacks());
            if (s_rootRanges < 0)
                s_rootRanges = ranges.Count;
            var filter = new WordFilter((nuint)KmemMap.Base, KmemMap.Size, ~s_foreignMinC, ~s_foreignSpanC, ~s_physMinC, ~s_physSpanC);
            (bytes, long skipped) = RootReader.Read(process, ranges, filter, s_rootWords);
            s_rootSkipped += skipped;
            if (bytes == 0 && ranges.Count > 0)
                throw new IOException("no byte of the process could be read (process_vm_readv and /proc/self/mem refused)");
        }
        catch (SystemException e) when (e is not OutOfMemoryException) // I/O, access, anything but running out of memory
        {
            s_rootsFailed = e.Message;
            s_roots = s_roots with { Process = false };
            s_rootWords.Clear();
            return;
        }
        finally
        {
            if (noGc && System.Runtime.GCSettings.LatencyMode == System.Runtime.GCLatencyMode.NoGCRegion)
            {
                try
                {
                    GC.EndNoGCRegion();
                }
                catch (InvalidOperationException)
                {
                    // a GC ended it meanwhile
                }
            }
            s_rootTicks += Stopwatch.GetTimestamp() - t0;
        }
        s_rootBytes += bytes;
        s_bytesScanned += bytes;
        foreach (ulong c in s_rootWords)
            ReferenceWord((nuint)~c);
        s_rootWords.Clear();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    private static void Drain()
    {
        // Records first (each is scanned on this thread), so that the slab blocks they gray are traced in one go. Slab
        // blocks are traced here until a budget is spent; what is left then is traced on every lane (a small graph
        // never wakes the workers). When the lanes' sweeps stop paying (references leading backwards), this thread
        // traces a larger budget before the lanes are tried again.
        bool parallel = UseParallelMarking();
        int budget = SerialBudget;
        while (true)
        {
            if (s_recordWork.TryPop(out LeakRecord? r))
                ScanRecord(r);
            else if (s_slabWork.Count == 0)
                return;
            else if (!DrainSlabs(parallel ? budget : int.MaxValue))
                budget = MarkSlabsInParallel() ? SerialBudget : SerialBudget * 64;
        }
    }

    // Blocks traced on the scanning thread before the rest of a pass's slab work goes to all lanes.
    private const int SerialBudget = 512;

    // Traces gray slab blocks until the work list is empty (true) or budget blocks were traced (false: the rest, with
    // the blocks already prefetched, is back on the work list).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    private static bool DrainSlabs(int budget)
    {
        // Gray blocks wait in a short FIFO after leaving the work list, their memory and side-table entries prefetched,
        // so the loads that would miss overlap with scanning the blocks ahead of them (the order of marking does not
        // change what is marked).
        ulong* ahead = stackalloc ulong[PrefetchDepth];
        int first = 0, count = 0;
        while (true)
        {
            while (count < PrefetchDepth && s_slabWork.TryPop(out ulong next))
            {
                Prefetch(~next);
                ahead[(first + count++) & (PrefetchDepth - 1)] = next;
            }
            if (count == 0)
                return true;
            if (budget-- == 0)
            {
                for (int k = count - 1; k >= 0; k--)
                    s_slabWork.Push(ahead[(first + k) & (PrefetchDepth - 1)]);
                return false;
            }
            ulong packed = ~ahead[first];
            first = (first + 1) & (PrefetchDepth - 1);
            count--;
            ScanSlab((uint)(packed >> 32), (uint)packed);
        }
    }

    private const int PrefetchDepth = 16;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(ulong packed)
    {
        if (!Sse.IsSupported)
            return;
        uint unit = (uint)(packed >> 32), slot = (uint)packed;
        byte* meta = SlabMeta.Of(unit);
        Sse.Prefetch0(Unsafe.AsPointer(ref SlabMeta.Owner(meta, slot)));
        Sse.Prefetch0(Unsafe.AsPointer(ref SlabMeta.Leak(meta, slot)));
        int cls = PageMap.SlabClassOfUnit(unit);
        if (cls >= 0)
        {
            byte* p = KmemMap.UnitAddress(unit) + (nuint)slot * SizeClasses.SizeOf(cls);
            Sse.Prefetch0(p);
            if (SizeClasses.SizeOf(cls) > 64)
                Sse.Prefetch0(p + 64);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GraySlab(uint unit, uint slot)
    {
        ref ulong w = ref Bits(unit, Gray)[slot >> 6];
        ulong bit = 1UL << (int)(slot & 63);
        if ((w & bit) != 0)
            return;
        w |= bit;
        s_slabWork.Push(~(((ulong)unit << 32) | slot));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GrayRecord(LeakRecord r)
    {
        if (r.Gray)
            return;
        r.Gray = true;
        s_recordWork.Push(r);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static ref LeakState StateOf(TrackedObject o)
    {
        if (o.Record is { } r)
            return ref r.State;
        return ref Unsafe.As<byte, LeakState>(ref SlabMeta.Leak(SlabMeta.Of(o.Unit), o.Slot));
    }

    private static uint[]? s_contexts; // context → thread ordinal, snapshot for one scan

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static (uint Thread, uint Stamp) BirthOf(TrackedObject o)
    {
        if (o.Record is { } r)
            return (r.Thread, r.Stamp);
        byte* meta = SlabMeta.Of(o.Unit);
        uint context = SlabMeta.Site(meta, o.Slot);
        s_contexts ??= Diagnostics.AllocContexts.ThreadOrdinals();
        uint thread = context < s_contexts.Length ? s_contexts[context] : Diagnostics.AllocContexts.ThreadOrdinalOf(context);
        return (thread, SlabMeta.Stamp(meta, o.Slot));
    }

    // ---- reading objects ----

    /// <summary>Calls <paramref name="visit"/> for each readable range of the object (scan areas honoured).</summary>
    private static void ForEachRange(TrackedObject o, bool forChecksum, RangeVisitor visit)
    {
        if (o.Record is not { } r)
        {
            uint size = SizeClasses.SizeOf(PageMap.Entry(o.Unit)->Class);
            byte* p = KmemMap.UnitAddress(o.Unit) + (nuint)o.Slot * size;
            if (!forChecksum && AreasOf(o.Unit, o.Slot, (nuint)(p - KmemMap.Base)) is { } areas)
            {
                foreach ((nuint off, nuint len) in areas)
                    visit(p + off, Math.Min(len, size - off));
                return;
            }
            visit(p, size);
            return;
        }
        switch (r.Kind)
        {
            case RecordKind.Large:
            case RecordKind.Vmalloc:
                // These can be unmapped by a concurrent free: read under the gate, and only while still registered.
                lock (KmemMap.UnmapGate)
                {
                    if (LeakTracking.TryGetKmem(r.Key, out LeakRecord? live) && live == r)
                        VisitRecord(r, KmemMap.Base + r.Key, forChecksum, visit);
                }
                break;
            case RecordKind.PerCpu:
                for (int cpu = 0; cpu < PerCpuAllocator.Copies; cpu++)
                    VisitRecord(r, KmemMap.Base + r.Key + (nuint)cpu * KmemMap.UnitSize, forChecksum, visit);
                break;
            case RecordKind.Foreign:
                // Not Kmem's memory: read through the fault-free copy where the OS has one (a range freed or protected
                // behind the detector's back is skipped, not a crash), directly elsewhere. Kmemleak.Free takes the
                // gate, so an object unregistered meanwhile is not read at all.
                lock (KmemMap.UnmapGate)
                {
                    if (!LeakTracking.IsRegistered(r))
                        break;
                    if (s_copyForeign)
                        VisitRecord(r, (byte*)~r.Key, forChecksum, (p, n) => RootReader.Copy(OsPages.Process, ~(nuint)p, n, visit));
                    else
                        VisitRecord(r, (byte*)~r.Key, forChecksum, visit);
                }
                break;
            case RecordKind.Phys:
                lock (KmemMap.UnmapGate)
                {
                    byte* v = (byte*)Heap.PhysToVirt(~r.Key);
                    if (v != null)
                        VisitRecord(r, v, forChecksum, visit);
                }
                break;
        }
    }

    private static void VisitRecord(LeakRecord r, byte* start, bool forChecksum, RangeVisitor visit)
    {
        if (!forChecksum && r.Areas is { Count: > 0 } areas)
        {
            foreach ((nuint off, nuint len) in areas)
                visit(start + off, Math.Min(len, r.Size - off));
            return;
        }
        visit(start, r.Size);
    }

    internal delegate void RangeVisitor(byte* start, nuint length);

    private static readonly RangeVisitor s_scanRange = ScanRange;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    private static void ScanSlab(uint unit, uint slot)
    {
        byte* meta = SlabMeta.Of(unit);
        if (SlabMeta.Owner(meta, slot) == 0)
        {
            // A free slot, grayed by a stale word (see ReferenceKmem): the bit goes, so that a block allocated here
            // during the scan is still scanned when it is referenced, or by the second chance.
            Bits(unit, Gray)[slot >> 6] &= ~(1UL << (int)(slot & 63));
            return;
        }
        if (((LeakState)SlabMeta.Leak(meta, slot) & (LeakState.NoScan | LeakState.Black)) != 0)
            return; // a block not to be scanned, or an ignored one (grayed by a reference)
        s_curUnit = unit;
        s_curSlot = slot;
        uint size = SizeClasses.SizeOf(PageMap.SlabClassOfUnit(unit));
        byte* p = KmemMap.UnitAddress(unit) + (nuint)slot * size;
        if (s_anySlabAreas && AreasOf(unit, slot, (nuint)(p - KmemMap.Base)) is { } areas)
        {
            foreach ((nuint off, nuint len) in areas)
                ScanRange(p + off, Math.Min(len, size - off));
        }
        else
        {
            ScanRange(p, size);
        }
        s_curUnit = uint.MaxValue;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    private static void ScanRecord(LeakRecord r)
    {
        if ((r.State & LeakState.NoScan) != 0)
            return;
        s_curRecord = r;
        ForEachRange(new TrackedObject(r, 0, 0), forChecksum: false, s_scanRange);
        s_curRecord = null;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    private static void ScanRange(byte* start, nuint length)
    {
        nuint first = ((nuint)start + 7) & ~(nuint)7;
        nuint end = (nuint)start + length;
        s_bytesScanned += (long)length;
        nuint kmemBase = (nuint)KmemMap.Base, kmemSize = KmemMap.Size;
        nuint foreignMin = ~s_foreignMinC, foreignSpan = ~s_foreignSpanC, physMin = ~s_physMinC, physSpan = ~s_physSpanC;
        for (nuint w = first; w + 8 <= end; w += 8)
        {
            // A quick reject with the bounds in registers; the few words that pass are looked up as root words are.
            nuint v = *(nuint*)w;
            if (v - kmemBase < kmemSize || v - foreignMin < foreignSpan || v - physMin < physSpan)
                ReferenceWord(v);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ReferenceWord(nuint v)
    {
        if (v - (nuint)KmemMap.Base < KmemMap.Size)
            ReferenceKmem(v);
        else if (InForeign(v))
            ReferenceForeign(v);
        else if (InPhys(v))
            ReferencePhys(v);
    }

    // A word holding a physical address inside a registered physical object refers to it.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ReferencePhys(nuint v)
    {
        foreach (LeakRecord r in s_physRecords)
            if (v - ~r.Key < r.Size)
            {
                Count(r);
                return;
            }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    private static void ReferenceKmem(nuint v)
    {
        nuint off = v - (nuint)KmemMap.Base;
        int cls = PageMap.SlabClassPlusOne(off) - 1; // most references are to slab blocks: one byte says so
        UnitInfo* e = cls >= 0 ? null : PageMap.LookupOffset(off);
        // A slab whose byte is not visible yet (its entry says Slab first) was made after this scan began: skip it.
        if (cls < 0 && (e == null || e->Kind == UnitKind.Slab))
            return;
        switch (cls >= 0 ? UnitKind.Slab : e->Kind)
        {
            case UnitKind.Slab:
            {
                uint unit = (uint)(off >> KmemMap.UnitShift);
                ClassInfo* ci = SizeClasses.Info(cls);
                uint slot = SizeClasses.SlotOf(ci, off & KmemMap.UnitMask);
                if (slot >= ci->BlocksPerSlab || (unit == s_curUnit && slot == s_curSlot))
                    return; // past the slab's last block, or a block's reference to itself
                if (unit >= s_bitmapsReady.Length || !s_bitmapsReady[unit])
                    return; // a slab made after the scan started
                // Only the gray bit is touched here (the bitmaps are dense and stay in cache). Whether the slot holds a
                // live, scannable block is asked when the block is taken off the work list, after the prefetch of its
                // side-table entries: a black slot is never white, and a free slot's bit is cleared then (ScanSlab).
                ref ulong w = ref Bits(unit, Gray)[slot >> 6];
                ulong bit = 1UL << (int)(slot & 63);
                if ((w & bit) != 0)
                {
                    // excess_ref: a reference to a (gray) vmalloc descriptor counts for its area.
                    byte* meta = SlabMeta.Of(unit);
                    ushort owner = SlabMeta.Owner(meta, slot);
                    if (owner != 0 && (owner & Checks.Redzones.TypeMask) == s_vmAreaIndex
                        && ((LeakState)SlabMeta.Leak(meta, slot) & LeakState.Black) == 0)
                        ReferenceArea(KmemMap.UnitAddress(unit) + (nuint)slot * ci->Size
                            + ((owner & Checks.Redzones.OwnerFlag) != 0 ? Checks.Redzones.Front : 0));
                    return;
                }
                w |= bit;
                s_slabWork.Push(~(((ulong)unit << 32) | slot));
                return;
            }
            case UnitKind.LargeHead:
            case UnitKind.LargeTail:
            case UnitKind.VmallocHead:
            case UnitKind.VmallocTail:
            {
                uint head = e->Kind is UnitKind.LargeHead or UnitKind.VmallocHead ? (uint)(off >> KmemMap.UnitShift) : e->Head;
                nuint key = ((nuint)head << KmemMap.UnitShift) + (e->Kind is UnitKind.VmallocHead or UnitKind.VmallocTail ? (nuint)KmemMap.PageSize : 0);
                if (LeakTracking.TryGetKmem(key, out LeakRecord? r) && off - key < r.Size)
                    Count(r);
                return;
            }
            case UnitKind.PerCpu:
            {
                byte* cookie = PerCpuAllocator.FindContaining((byte*)v);
                if (cookie != null && LeakTracking.TryGetKmem((nuint)(cookie - KmemMap.Base), out LeakRecord? r))
                    Count(r);
                return;
            }
        }
    }

    private static void ReferenceArea(byte* descriptor)
    {
        void* addr = *(void**)descriptor;
        if (LeakTracking.TryGetKmem((nuint)((byte*)addr - KmemMap.Base), out LeakRecord? area))
            Count(area);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    private static void ReferenceForeign(nuint v)
    {
        int i = ForeignIndex(v);
        if (i >= 0)
            Count(s_foreignRecords[i]);
    }

    // Keys are ~start, ascending: the record that may contain v is the one with the smallest key ≥ ~v.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int ForeignIndex(nuint v)
    {
        int lo = LowerBound<nuint>(s_foreignKeys, ~v);
        return lo < s_foreignKeys.Length && v - ~s_foreignRecords[lo].Key < s_foreignRecords[lo].Size ? lo : -1;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Count(LeakRecord r)
    {
        if (s_curRecord == r || (r.State & LeakState.Black) != 0 || r.Gray)
            return;
        if (++r.Count >= r.MinCount)
            GrayRecord(r);
    }

    // ---- checksum ----

    // A record's checksum (its scan areas, or the whole object). A slab block's is summed in place by the second chance.
    private static uint Checksum(LeakRecord r)
    {
        uint crc = LeakStates.NoCrc;
        bool any = false;
        ForEachRange(new TrackedObject(r, 0, 0), forChecksum: true, (p, n) =>
        {
            any = true;
            crc = Crc32C(crc, p, n);
        });
        return any ? crc : LeakStates.NoCrc;
    }

    private static readonly List<ulong> s_changed = new(); // ~(unit << 32 | slot): summed white blocks that changed
    private static readonly List<ulong> s_summed = new();  // the same, every one this scan grayed (forgotten if it fails)
    private static readonly List<(LeakRecord Record, uint Crc)> s_recordSums = new(); // records' sums before this scan's

    // Sums the white blocks of a slab (kmemleak's checksum of the contents); each whose sum differs from the stored one, or
    // has none, gets the new sum and goes on the list (complemented, as unit and slot), to be grayed for a second chance.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    private static void SumWhiteBlocks(uint unit, List<ulong> changed)
    {
        byte* meta = SlabMeta.Of(unit);
        int cls = PageMap.Entry(unit)->Class;
        uint n = SizeClasses.BlocksPerSlab(cls), size = SizeClasses.SizeOf(cls);
        byte* blocks = KmemMap.UnitAddress(unit);
        ulong* gray = Bits(unit, Gray);
        for (uint first = 0; first < n; first += 64)
        {
            ulong whiteNow = Unreached(meta, gray, first, n);
            for (; whiteNow != 0; whiteNow &= whiteNow - 1)
            {
                uint slot = first + (uint)BitOperations.TrailingZeroCount(whiteNow);
                ulong next = whiteNow & (whiteNow - 1);
                if (next != 0 && Sse.IsSupported) // the next block's memory while this one is summed
                    Sse.Prefetch0(blocks + (nuint)(first + (uint)BitOperations.TrailingZeroCount(next)) * size);
                uint crc = Crc32C(LeakStates.NoCrc, blocks + (nuint)slot * size, size);
                ref LeakState state = ref Unsafe.As<byte, LeakState>(ref SlabMeta.Leak(meta, slot));
                ref uint stored = ref SlabMeta.Crc(meta, slot);
                if ((state & LeakState.CrcValid) == 0 || crc != stored)
                {
                    changed.Add(~(((ulong)unit << 32) | slot)); // first: a block whose sum is stored is on the list
                    stored = crc;
                    state |= LeakState.CrcValid;
                }
            }
        }
    }

    // Grays the listed blocks (their sums changed), moves them to the scan's list (Run forgets their sums if the scan
    // fails later) and empties the list; a list grown by a scan that found many changed blocks (the first scan sums every
    // white block) gives its memory back.
    private static void GrayChanged(List<ulong> changed)
    {
        foreach (ulong packed in changed)
            GraySlab((uint)(~packed >> 32), (uint)~packed);
        s_summed.AddRange(changed);
        Empty(changed);
    }

    // When summing or graying fails, the listed blocks lose the sums just stored (CrcValid cleared), so that the next
    // scan sees them changed again and none misses its second chance; the list is emptied.
    private static void ForgetSums(List<ulong> changed)
    {
        foreach (ulong packed in changed)
            SlabMeta.Leak(SlabMeta.Of((uint)(~packed >> 32)), (uint)~packed) &= unchecked((byte)~LeakState.CrcValid);
        Empty(changed);
    }

    // Empties a list of changed blocks; one grown past ChangedKeep entries gives its memory back.
    private static void Empty(List<ulong> changed)
    {
        changed.Clear();
        if (changed.Capacity > ChangedKeep)
            changed.Capacity = 0;
    }

    private const int ChangedKeep = 4096; // entries a list of changed blocks keeps between scans

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    private static uint Crc32C(uint crc, byte* p, nuint n)
    {
        nuint i = 0;
        for (; i + 8 <= n; i += 8)
            crc = BitOperations.Crc32C(crc, *(ulong*)(p + i));
        for (; i < n; i++)
            crc = BitOperations.Crc32C(crc, p[i]);
        return crc;
    }


    // ---- classification ----

    // Direct: nothing else unreferenced points to it. In an unreachable cycle one member (the oldest) is made direct.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    private static void Classify(List<Unreferenced> found)
    {
        if (found.Count == 0)
            return;
        // Index the unreferenced objects: slab blocks by (unit, slot) in an open-addressing table, records by reference.
        var slabIndex = new SlabIndex(found.Count);
        var recordIndex = new Dictionary<LeakRecord, int>();
        for (int i = 0; i < found.Count; i++)
        {
            TrackedObject o = found[i].Object;
            if (o.Record is { } r)
                recordIndex[r] = i;
            else
                slabIndex.Add(o.Unit, o.Slot, i);
        }
        // Edges in one flat list: targets of object i are edgeTargets[edgeStart[i] .. edgeStart[i + 1]).
        var edgeStart = new int[found.Count + 1];
        var edgeTargets = new List<int>(found.Count);
        for (int i = 0; i < found.Count; i++)
        {
            edgeStart[i] = edgeTargets.Count;
            TrackedObject self = found[i].Object;
            if (self.Record is null)
            {
                // The common case, without a delegate: a slab block's words.
                uint size = SizeClasses.SizeOf(PageMap.Entry(self.Unit)->Class);
                nuint* words = (nuint*)(KmemMap.UnitAddress(self.Unit) + (nuint)self.Slot * size);
                for (uint k = 0; k < size / 8; k++)
                    AddEdge(i, words[k], edgeStart[i]);
            }
            else
            {
                int from = i;
                ForEachRange(self, forChecksum: false, (p, n) =>
                {
                    nuint first = ((nuint)p + 7) & ~(nuint)7, end = (nuint)p + n;
                    for (nuint w = first; w + 8 <= end; w += 8)
                        AddEdge(from, *(nuint*)w, edgeStart[from]);
                });
            }
        }
        edgeStart[found.Count] = edgeTargets.Count;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void AddEdge(int from, nuint word, int firstOfFrom)
        {
            int j;
            nuint off = word - (nuint)KmemMap.Base;
            if (off < KmemMap.Size)
            {
                UnitInfo* e = PageMap.LookupOffset(off);
                if (e == null)
                    return;
                if (e->Kind == UnitKind.Slab)
                {
                    // The common case without a lookup of the target's side tables: found blocks are allocated.
                    j = slabIndex.Find((uint)(off >> KmemMap.UnitShift), SizeClasses.SlotOf(e->Class, off & KmemMap.UnitMask));
                    if (j < 0 || j == from)
                        return;
                    goto add;
                }
            }
            else if (!InForeign(word))
            {
                return;
            }
            TrackedObject? t = Resolve(word);
            if (t is not { } target || target == found[from].Object)
                return;
            if (target.Record is { } tr ? !recordIndex.TryGetValue(tr, out j) : (j = slabIndex.Find(target.Unit, target.Slot)) < 0)
                return;
        add:
            for (int e = firstOfFrom; e < edgeTargets.Count; e++)
                if (edgeTargets[e] == j)
                    return;
            edgeTargets.Add(j);
        }

        // Strongly connected components (Tarjan, iterative). A component nothing outside it points to is a leak's root:
        // its oldest member is direct (valgrind's rule for cycles); every other object is indirect.
        int n = found.Count, next = 0, components = 0;
        var order = new int[n];
        var low = new int[n];
        var component = new int[n];
        Array.Fill(order, -1);
        var onStack = new bool[n];
        var tarjan = new Stack<int>();
        var frames = new Stack<(int Node, int Edge)>();
        for (int root = 0; root < n; root++)
        {
            if (order[root] >= 0)
                continue;
            frames.Push((root, 0));
            order[root] = low[root] = next++;
            tarjan.Push(root);
            onStack[root] = true;
            while (frames.Count > 0)
            {
                (int v, int e) = frames.Pop();
                if (edgeStart[v] + e < edgeStart[v + 1])
                {
                    frames.Push((v, e + 1));
                    int w = edgeTargets[edgeStart[v] + e];
                    if (order[w] < 0)
                    {
                        order[w] = low[w] = next++;
                        tarjan.Push(w);
                        onStack[w] = true;
                        frames.Push((w, 0));
                    }
                    else if (onStack[w])
                    {
                        low[v] = Math.Min(low[v], order[w]);
                    }
                    continue;
                }
                if (frames.TryPeek(out var parent))
                    low[parent.Node] = Math.Min(low[parent.Node], low[v]);
                if (low[v] == order[v])
                {
                    int w;
                    do
                    {
                        w = tarjan.Pop();
                        onStack[w] = false;
                        component[w] = components;
                    } while (w != v);
                    components++;
                }
            }
        }
        var entered = new bool[components];
        for (int i = 0; i < n; i++)
            for (int e = edgeStart[i]; e < edgeStart[i + 1]; e++)
                if (component[edgeTargets[e]] != component[i])
                    entered[component[edgeTargets[e]]] = true;
        Span<Unreferenced> span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(found);
        var rootTaken = new bool[components];
        for (int i = 0; i < n; i++)
        {
            int c = component[i];
            span[i].Direct = !entered[c] && !rootTaken[c];
            if (span[i].Direct)
                rootTaken[c] = true;
        }
    }

    /// <summary>Unreferenced slab blocks by (unit, slot) → their index in the found list: linear probing in a power-of-two
    /// table (one cache line per lookup, where a Dictionary takes two).</summary>
    private sealed class SlabIndex
    {
        private readonly ulong[] _keys;   // ~(unit << 32 | slot), never an address; 0 = empty
        private readonly int[] _values;
        private readonly int _mask;

        public SlabIndex(int count)
        {
            int size = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(16, count * 2));
            _keys = new ulong[size];
            _values = new int[size];
            _mask = size - 1;
        }

        private static int Hash(ulong key) => (int)((key * 0x9E3779B97F4A7C15UL) >> 35);

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Add(uint unit, uint slot, int value)
        {
            ulong key = ~((ulong)unit << 32 | slot);
            int i = Hash(key) & _mask;
            while (_keys[i] != 0 && _keys[i] != key)
                i = (i + 1) & _mask;
            _keys[i] = key;
            _values[i] = value;
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public int Find(uint unit, uint slot)
        {
            ulong key = ~((ulong)unit << 32 | slot);
            for (int i = Hash(key) & _mask; ; i = (i + 1) & _mask)
            {
                ulong k = _keys[i];
                if (k == key)
                    return _values[i];
                if (k == 0)
                    return -1;
            }
        }
    }

    /// <summary>The tracked object a word points into, if any (no side effects).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    public static TrackedObject? Resolve(nuint v)
    {
        nuint off = v - (nuint)KmemMap.Base;
        if (off < KmemMap.Size)
        {
            UnitInfo* e = PageMap.Lookup((void*)v);
            if (e == null)
                return null;
            switch (e->Kind)
            {
                case UnitKind.Slab:
                {
                    uint unit = (uint)(off >> KmemMap.UnitShift);
                    uint slot = SizeClasses.SlotOf(e->Class, off & KmemMap.UnitMask);
                    return slot < SizeClasses.BlocksPerSlab(e->Class) && SlabMeta.Owner(SlabMeta.Of(unit), slot) != 0
                        ? new TrackedObject(null, unit, slot) : null;
                }
                case UnitKind.LargeHead or UnitKind.LargeTail or UnitKind.VmallocHead or UnitKind.VmallocTail:
                {
                    uint head = e->Kind is UnitKind.LargeHead or UnitKind.VmallocHead ? (uint)(off >> KmemMap.UnitShift) : e->Head;
                    nuint key = ((nuint)head << KmemMap.UnitShift) + (e->Kind is UnitKind.VmallocHead or UnitKind.VmallocTail ? (nuint)KmemMap.PageSize : 0);
                    return LeakTracking.TryGetKmem(key, out LeakRecord? r) && off - key < r.Size ? new TrackedObject(r, 0, 0) : null;
                }
                case UnitKind.PerCpu:
                {
                    byte* cookie = PerCpuAllocator.FindContaining((byte*)v);
                    return cookie != null && LeakTracking.TryGetKmem((nuint)(cookie - KmemMap.Base), out LeakRecord? r) ? new TrackedObject(r, 0, 0) : null;
                }
            }
            return null;
        }
        if (s_inScan)
        {
            // During a scan the sorted table answers without the registry's lock.
            if (!InForeign(v))
                return null;
            int i = ForeignIndex(v);
            return i >= 0 ? new TrackedObject(s_foreignRecords[i], 0, 0) : null;
        }
        lock (LeakTracking.Lock)
        {
            LeakRecord? f = LeakTracking.ForeignContaining(v);
            return f is null ? null : new TrackedObject(f, 0, 0);
        }
    }

    /// <summary>A slab block's stored checksum, ~0 when it was never computed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // once per leak of a scan, in DescribeSlab
    public static uint SlabCrc(byte* meta, uint slot) =>
        ((LeakState)SlabMeta.Leak(meta, slot) & LeakState.CrcValid) != 0 ? SlabMeta.Crc(meta, slot) : LeakStates.NoCrc;

    // The start of the scan interval an object was born in: the scan before the first one that started after its birth
    // (0 before the first scan; the latest scan's start when no scan has started since).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // a call per reported object: no tiering
    private static long BirthLowerBound(int bornBefore) =>
        bornBefore > 0 ? s_history[bornBefore - 1].StartMs : bornBefore < 0 && s_history.Count > 0 ? s_history[^1].StartMs : 0;

    /// <summary>When an object was born, as reports print it (ms since start; for slab blocks a lower bound).</summary>
    public static long BirthMsOf(TrackedObject o)
    {
        if (o.Record is { } r)
            return r.BirthMs;
        (uint thread, uint stamp) = BirthOf(o);
        s_contexts = null;
        return BirthLowerBound(FirstScanAfterBirth(thread, stamp));
    }

    // ---- describing ----

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static Unreferenced DescribeRecord(LeakRecord r, int bornBefore) => new()
    {
        Object = new TrackedObject(r, 0, 0), Offset = r.Key, Kind = r.Kind, Size = r.Size, TypeIndex = r.TypeIndex, Context = r.Context,
        Thread = r.Thread, Stamp = r.Stamp, BornBeforeScan = bornBefore, BirthMs = r.BirthMs, Crc = r.Crc, Direct = true,
    };

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // once per leak of a scan: no tiering
    private static Unreferenced DescribeSlab(byte* meta, uint unit, uint slot, uint size, uint thread, uint stamp, int bornBefore)
    {
        long birthMs = BirthLowerBound(bornBefore);
        nuint offset = ((nuint)unit << KmemMap.UnitShift) + (nuint)slot * size;
        ushort owner = SlabMeta.Owner(meta, slot);
        // A redzoned block is reported as its caller knows it: the address after the front zone, the size asked for.
        bool zoned = (owner & Checks.Redzones.OwnerFlag) != 0;
        return new Unreferenced
        {
            Object = new TrackedObject(null, unit, slot), Offset = offset, Kind = null, Size = zoned ? Checks.Redzones.RequestedSize(KmemMap.Base + offset, size) : size,
            Front = zoned ? (byte)Checks.Redzones.Front : (byte)0,
            TypeIndex = (ushort)(owner & Checks.Redzones.TypeMask), Context = SlabMeta.Site(meta, slot), Thread = thread, Stamp = stamp,
            BornBeforeScan = bornBefore, BirthMs = birthMs, Crc = SlabCrc(meta, slot), Direct = true,
        };
    }
}

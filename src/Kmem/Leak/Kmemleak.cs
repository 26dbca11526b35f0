// Leak/Kmemleak.cs — the leak detector's public face (include/linux/kmemleak.h and /sys/kernel/debug/kmemleak): the
// registration API, the control commands (Write), the report (Read) and structured scans (Scan), plus automatic scans.
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using Kmem.Caches;
using Kmem.Diagnostics;
using Kmem.Leak;
using Kmem.Pages;
using Kmem.Slabs;

namespace Kmem;

/// <summary>
/// kmemleak for Kmem: every Kmem block is tracked from birth (min_count 1; vmalloc areas 2), foreign memory can be
/// registered, and a scan marks everything reachable from the roots (registered min_count-0 objects). Unreferenced
/// objects older than the minimum age whose contents did not change are reported once, in the kernel's format.
/// </summary>
public static unsafe class Kmemleak
{
    private static readonly object s_scanLock = new();
    private static int s_minAgeMs = 5000;
    private static int s_unrefScans = 1;
    private static bool s_stackScan = true;
    private static bool s_gcBeforeScan = true;
    private static bool s_processRoots = true;
    private static bool s_rootsUnavailableSaid;
    private static string? s_rootsFailureSaid;
    private static bool s_disabled = !LeakTracking.Enabled;
    private static bool s_leaksFound;
    private static List<Unreferenced> s_last = new();
    private static long s_lastStartMs;
    private static readonly List<PoolLeakEntry> s_poolLeaks = new(); // memory-pool owners collected without Dispose

    /// <summary>A pool buffer whose owner was collected without Dispose: its report line set and its facts.</summary>
    internal sealed record PoolLeakEntry(string Address, int Size, string Type, string Site, string Text);
    private static LeakScanStats s_lastStats = new(0, 0, TimeSpan.Zero);
    private static Thread? s_autoThread;
    private static volatile bool s_autoStop;
    private static int s_autoPeriodSeconds = 600;
    private static readonly AutoResetEvent s_autoWake = new(false);
    private static readonly bool s_debug = Environment.GetEnvironmentVariable("KMEMLEAK_DEBUG") is { Length: > 0 } d && d != "0";
    private static readonly Dictionary<nuint, (uint Stamp, string Trace)> s_traces = new(); // kmem_map offset → stack (trace=on)

    /// <summary>Whether the detector is on (<c>off</c> or <c>KMEMLEAK=off</c> turn it off for good).</summary>
    public static bool IsEnabled => !s_disabled;

    /// <summary>Minimum age, in ms, before an object can be reported (default 5000; <c>minage=</c>).</summary>
    public static int MinimumAgeMs => s_minAgeMs;

    /// <summary>Consecutive unreferenced scans before an object is reported (default 1; <c>unref_scans=</c>).</summary>
    public static int UnreferencedScans => s_unrefScans;

    /// <summary>Whether thread stacks are scanned (<c>stack=on|off</c>; part of the process roots).</summary>
    public static bool StackScanning => s_stackScan;

    /// <summary>Whether a scan started on demand first runs a blocking full GC (<c>gc=on|off</c>, default on).</summary>
    public static bool CollectsBeforeScan => s_gcBeforeScan;

    /// <summary>Whether the process's own memory (GC heap, stacks, native data and heaps) is scanned as roots
    /// (<c>process=on|off</c>, default on; unavailable outside Linux, where only registered roots are scanned).</summary>
    public static bool ProcessRootsEnabled => s_processRoots;

    /// <summary>Whether this OS lets the detector scan the process's memory.</summary>
    public static bool ProcessRootsSupported => Platform.OsPages.Process.IsSupported;

    // ---- registration API ----

    /// <summary>kmemleak_alloc: registers foreign memory (not Kmem's) of <paramref name="size"/> bytes. min_count −1 = ignored,
    /// 0 = a root (scanned, never reported), n ≥ 1 = needs n references.</summary>
    public static void Alloc(void* ptr, nuint size, int minCount, MallocFlags gfp = MallocFlags.WaitOk,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        CheckGfp(gfp);
        if (minCount < -1)
            throw new ArgumentOutOfRangeException(nameof(minCount), minCount, "min_count is -1 (ignore), 0 (root) or a number of references");
        if (ptr == null || s_disabled)
            return;
        if (size == 0 || (nuint)ptr + size < (nuint)ptr)
            throw new ArgumentOutOfRangeException(nameof(size), size, "the object must have a size and not wrap around");
        LeakRecord r = NewRecord(RecordKind.Foreign, ~(nuint)ptr, size, minCount, member, file, line); // before the lock
        lock (LeakTracking.Lock)
        {
            // The test and the insertion under one lock: two overlapping registrations cannot both get in.
            nuint start = (nuint)ptr, end = start + size;
            bool overlapsKmem = KmemMap.IsStarted && start < (nuint)KmemMap.Base + KmemMap.Size && end > (nuint)KmemMap.Base;
            bool overlapsForeign = LeakTracking.OverlapsAny(LeakTracking.ForeignRecords, start, end);
            if (overlapsKmem || overlapsForeign)
                throw new ArgumentException($"Cannot insert 0x{start:x} into the object search tree (overlaps existing)", nameof(ptr));
            LeakTracking.Add(r);
        }
    }

    /// <summary>kmemleak_alloc_percpu: tracks a per-CPU object again after <see cref="FreePercpu"/> untracked it.</summary>
    public static void AllocPercpu(PerCpuPtr ptr, nuint size, MallocFlags gfp = MallocFlags.WaitOk)
    {
        CheckGfp(gfp);
        Retrack(ptr.Cookie, "per-CPU objects are registered by Heap.AllocPercpu");
    }

    /// <summary>kmemleak_vmalloc: tracks a vmalloc area again (min_count 2) after <see cref="Free"/> untracked it.</summary>
    public static void Vmalloc(VmArea area, nuint size, MallocFlags gfp = MallocFlags.WaitOk)
    {
        CheckGfp(gfp);
        Retrack(area.Addr, "vmalloc areas are registered by Heap.Vmalloc");
    }

    /// <summary>kmemleak_free: unregisters an object. Foreign memory is forgotten; a Kmem block stops being tracked.</summary>
    public static void Free(void* ptr)
    {
        if (ptr == null || s_disabled)
            return;
        bool removed;
        lock (KmemMap.UnmapGate) // once Free returns, no scan is reading the memory
        {
            LeakRecord? guarded;
            lock (LeakTracking.Lock)
                guarded = LeakTracking.ForeignContaining((nuint)ptr) is { Guarded: true } g && ~g.Key == (nuint)ptr ? g : null;
            removed = guarded is null && LeakTracking.Remove(RecordKind.Foreign, ~(nuint)ptr, out _);
        }
        if (removed)
            return;
        if (!Paint(ptr, LeakState.Black))
            Debug($"Freeing unknown object at 0x{(nuint)ptr:x}");
    }

    /// <summary>kmemleak_free_part: unregisters [ptr, ptr+size) of a registered foreign object, keeping the pieces either side.</summary>
    public static void FreePart(void* ptr, nuint size,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if (ptr == null || s_disabled)
            return;
        LeakRecord? r;
        lock (LeakTracking.Lock)
            r = LeakTracking.ForeignContaining((nuint)ptr);
        if (r is null || r.Guarded)
        {
            if (r is not null || Resolve(ptr) is not null)
                throw new ArgumentException($"0x{(nuint)ptr:x} is Kmem memory; only registered foreign ranges can be freed in part", nameof(ptr));
            Debug($"Partially freeing unknown object at 0x{(nuint)ptr:x} (size {size})");
            return;
        }
        lock (KmemMap.UnmapGate)
            SplitAround(r, (nuint)ptr - ~r.Key, size, RecordKind.Foreign, member, file, line);
    }

    /// <summary>kmemleak_free_percpu: stops tracking a per-CPU object.</summary>
    public static void FreePercpu(PerCpuPtr ptr) => Free(ptr.Cookie);

    /// <summary>kmemleak_update_trace: the object's allocation site and thread become the caller's.</summary>
    public static void UpdateTrace(void* ptr,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if (ptr == null || s_disabled)
            return;
        uint context = ThreadCaches.Context(ThreadCaches.Current(), CallSites.Intern(member, file, line));
        TrackedObject? o = Resolve(ptr);
        if (o is null)
        {
            Debug($"Updating stack trace for unknown object at 0x{(nuint)ptr:x}");
            return;
        }
        if (o.Value.Record is { } r)
            r.Context = context;
        else
            SlabMeta.Site(SlabMeta.Of(o.Value.Unit), o.Value.Slot) = context;
    }

    /// <summary>kmemleak_not_leak: the object becomes a root: always scanned, never reported.</summary>
    public static void NotLeak(void* ptr)
    {
        if (ptr != null && !s_disabled && !Paint(ptr, LeakState.Root))
            Debug($"Trying to color unknown object at 0x{(nuint)ptr:x} as Grey");
    }

    /// <summary>kmemleak_ignore: the object is neither scanned nor reported.</summary>
    public static void Ignore(void* ptr)
    {
        if (ptr != null && !s_disabled && !Paint(ptr, LeakState.Black))
            Debug($"Trying to color unknown object at 0x{(nuint)ptr:x} as Black");
    }

    /// <summary>kmemleak_scan_area: only the given areas of the object are scanned from now on. <paramref name="ptr"/> may be
    /// interior; <see cref="nuint.MaxValue"/> means "to the end"; an area past the object's end is an error.</summary>
    public static void ScanArea(void* ptr, nuint size, MallocFlags gfp = MallocFlags.WaitOk)
    {
        CheckGfp(gfp);
        if (ptr == null || size == 0 || s_disabled)
            return;
        TrackedObject? o = Resolve(ptr);
        if (o is null)
        {
            Debug($"Adding scan area to unknown object at 0x{(nuint)ptr:x}");
            return;
        }
        nuint start = StartOf(o.Value), objSize = SizeOf(o.Value);
        nuint offset = (nuint)ptr - start;
        nuint length = size == nuint.MaxValue ? objSize - offset : size;
        if (offset + length > objSize || offset + length < offset)
            throw new ArgumentException($"Scan area larger than object 0x{start:x}", nameof(size));
        lock (s_scanLock) // the scanner reads the area lists without other locks
        {
            List<(nuint, nuint)> areas;
            if (o.Value.Record is { } r)
            {
                areas = r.Areas ??= new();
            }
            else
            {
                // A slab block's list is tied to this block's birth: an earlier block's list in the slot is replaced.
                nuint key = BlockStartOf(o.Value) - (nuint)KmemMap.Base;
                byte* meta = Slabs.SlabMeta.Of(o.Value.Unit);
                if (!LeakScanner.SlabAreas.TryGetValue(key, out LeakScanner.SlabAreaList? list) || !list.IsFor(meta, o.Value.Slot))
                    LeakScanner.SlabAreas[key] = list = new(Slabs.SlabMeta.Site(meta, o.Value.Slot), Slabs.SlabMeta.Stamp(meta, o.Value.Slot));
                areas = list.Areas;
            }
            areas.Add((offset + FrontOf(o.Value), length)); // areas are kept relative to the block's start
            LeakScanner.AreasChanged();
        }
    }

    /// <summary>kmemleak_no_scan: the object's contents are never scanned (it can still be referenced).</summary>
    public static void NoScan(void* ptr)
    {
        if (ptr != null && !s_disabled && !Paint(ptr, LeakState.NoScan))
            Debug($"Not scanning unknown object at 0x{(nuint)ptr:x}");
    }

    /// <summary>kmemleak_alloc_phys: registers an object known by physical address. It is scanned while its region is mapped;
    /// min_count 0 makes it a root; with min_count ≥ 1 it is reported like any other object when nothing refers to it
    /// (a reference is a word holding its physical address, or its current virtual address).</summary>
    public static void AllocPhys(ulong phys, nuint size, int minCount, MallocFlags gfp = MallocFlags.WaitOk,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        CheckGfp(gfp);
        if (minCount < -1)
            throw new ArgumentOutOfRangeException(nameof(minCount), minCount, "min_count is -1 (ignore), 0 (root) or a number of references");
        if (phys == 0 || s_disabled)
            return;
        if (size == 0 || phys + size < phys)
            throw new ArgumentOutOfRangeException(nameof(size), size, "the object must have a size and not wrap around");
        LeakRecord r = NewRecord(RecordKind.Phys, ~(nuint)phys, size, minCount, member, file, line);
        lock (LeakTracking.Lock)
        {
            if (LeakTracking.OverlapsAny(LeakTracking.PhysRecords, (nuint)phys, (nuint)(phys + size)))
                throw new ArgumentException($"Cannot insert 0x{phys:x} into the object search tree (overlaps existing)", nameof(phys));
            LeakTracking.Add(r);
        }
    }

    /// <summary>kmemleak_free_part_phys.</summary>
    public static void FreePartPhys(ulong phys, nuint size,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if (phys == 0 || s_disabled)
            return;
        LeakRecord? r;
        lock (LeakTracking.Lock)
            r = LeakTracking.PhysContaining(phys);
        if (r is null)
        {
            Debug($"Partially freeing unknown object at 0x{phys:x} (size {size})");
            return;
        }
        SplitAround(r, (nuint)(phys - (ulong)~r.Key), size, RecordKind.Phys, member, file, line);
    }

    /// <summary>kmemleak_not_leak_phys.</summary>
    public static void NotLeakPhys(ulong phys) => PaintPhys(phys, LeakState.Root, "Grey");

    /// <summary>kmemleak_ignore_phys.</summary>
    public static void IgnorePhys(ulong phys) => PaintPhys(phys, LeakState.Black, "Black");

    /// <summary>kmemleak_transient_leak: resets the object's checksum, so the next scan treats it as changed.</summary>
    public static void TransientLeak(void* ptr)
    {
        if (ptr == null || s_disabled)
            return;
        TrackedObject? o = Resolve(ptr);
        if (o is null || StartOf(o.Value) != (nuint)ptr)
        {
            Debug($"Not resetting the checksum of an unknown object at 0x{(nuint)ptr:x}");
            return;
        }
        if (o.Value.Record is { } r)
            r.Crc = LeakStates.NoCrc;
        else
            SlabMeta.Leak(SlabMeta.Of(o.Value.Unit), o.Value.Slot) &= unchecked((byte)~LeakState.CrcValid);
    }

    // ---- control and reports ----

    /// <summary>
    /// A command, as written to /sys/kernel/debug/kmemleak: <c>off</c>, <c>stack=on|off</c>, <c>scan=on|off</c>,
    /// <c>scan=&lt;secs&gt;</c>, <c>scan</c>, <c>clear</c>, <c>dump=&lt;addr&gt;</c>, and Kmem's <c>minage=&lt;ms&gt;</c>,
    /// <c>unref_scans=&lt;n&gt;</c>, <c>trace=on|off</c>, <c>gc=on|off</c>, <c>process=on|off</c>. Returns the output
    /// (dump, scan), else "".
    /// </summary>
    public static string Write(string command)
    {
        ArgumentNullException.ThrowIfNull(command);
        string c = command.Trim();
        if (c == "clear")
        {
            Clear();
            return "";
        }
        if (!IsKnown(c))
            throw new ArgumentException($"unknown kmemleak command '{command}'", nameof(command));
        if (s_disabled)
            throw new InvalidOperationException("kmemleak is disabled; only 'clear' is accepted");
        switch (c)
        {
            case "off":
                Disable("Kernel memory leak detector disabled");
                return "";
            case "stack=on": s_stackScan = true; return "";
            case "stack=off": s_stackScan = false; return "";
            case "gc=on": s_gcBeforeScan = true; return "";
            case "gc=off": s_gcBeforeScan = false; return "";
            case "process=on": s_processRoots = true; return "";
            case "process=off": s_processRoots = false; return "";
            case "trace=on": LeakTracking.Trace = true; return "";
            case "trace=off": LeakTracking.Trace = false; return "";
            case "scan=on": StartAutoScan(); return "";
            case "scan=off": StopAutoScan(); return "";
            case "scan":
                int n = Scan().NewLeaks.Count;
                return n > 0 ? $"{n} new suspected memory leaks" : "";
        }
        string value = c[(c.IndexOf('=') + 1)..];
        if (c.StartsWith("scan=", StringComparison.Ordinal))
        {
            int secs = ParseNumber(value, 0, int.MaxValue / 1000, command);
            StopAutoScan();
            if (secs != 0)
            {
                s_autoPeriodSeconds = secs;
                StartAutoScan();
            }
            return "";
        }
        if (c.StartsWith("minage=", StringComparison.Ordinal))
        {
            s_minAgeMs = ParseNumber(value, 0, int.MaxValue, command);
            return "";
        }
        if (c.StartsWith("unref_scans=", StringComparison.Ordinal))
        {
            s_unrefScans = ParseNumber(value, 1, LeakStates.MaxUnref, command);
            return "";
        }
        // dump=<addr>
        ulong addr = ParseAddress(value, command);
        lock (s_scanLock) // the record and the scan history it reads are the scanner's
            return Dump((void*)addr);
    }

    private static bool IsKnown(string c) =>
        c is "off" or "stack=on" or "stack=off" or "gc=on" or "gc=off" or "process=on" or "process=off" or "trace=on" or "trace=off" or "scan=on" or "scan=off" or "scan"
        || (c.Length > 5 && c.StartsWith("scan=", StringComparison.Ordinal))
        || (c.Length > 7 && c.StartsWith("minage=", StringComparison.Ordinal))
        || (c.Length > 12 && c.StartsWith("unref_scans=", StringComparison.Ordinal))
        || (c.Length > 5 && c.StartsWith("dump=", StringComparison.Ordinal));

    private static int ParseNumber(string text, int min, int max, string command)
    {
        bool ok = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? long.TryParse(text.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out long v)
            : long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out v);
        if (!ok || v < min || v > max)
            throw new ArgumentException($"kmemleak command '{command}': '{text}' is not a number from {min} to {max}", nameof(command));
        return (int)v;
    }

    private static ulong ParseAddress(string text, string command)
    {
        bool ok = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.TryParse(text.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong v)
            : ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out v);
        if (!ok)
            throw new ArgumentException($"kmemleak command '{command}': '{text}' is not an address", nameof(command));
        return v;
    }

    /// <summary>The report: every reported object still unreferenced, in allocation order, in the kernel's format.</summary>
    public static string Read()
    {
        var o = new StringBuilder();
        lock (s_scanLock)
        {
            foreach (Unreferenced u in s_last)
                if (StillThere(u))
                    LeakReportFormatter.AppendReport(o, u, TraceOf(u));
            foreach (PoolLeakEntry entry in s_poolLeaks)
                o.Append(entry.Text);
        }
        return o.ToString();
    }

    /// <summary>What the last scan reported, less the objects freed since (no scan is run): the structured twin of
    /// <see cref="Read"/>, with the last scan's statistics.</summary>
    public static LeakScanResult Current()
    {
        lock (s_scanLock)
        {
            var sites = new Dictionary<uint, string>();
            var reports = s_last.Where(StillThere).Select(u => LeakReportFormatter.ToReport(u, s_lastStartMs, sites)).ToList();
            return new LeakScanResult(reports, s_lastStats);
        }
    }

    /// <summary>Runs a scan now and returns what it found (with <c>gc=on</c>, after a blocking full GC). The text report
    /// is <see cref="Read"/>.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static LeakScanResult Scan()
    {
        ClearDeadStack();
        return ScanFromHere();
    }

    [MethodImpl(MethodImplOptions.NoInlining)] // its frame marks where the caller's stack ends and the detector's begins
    private static LeakScanResult ScanFromHere()
    {
        // The caller's registers, saved at the bottom of this frame: from here up is the program's stack (scanned),
        // below is the detector's own.
        byte* registers = stackalloc byte[Platform.OsPages.RegisterBytes];
        Platform.OsPages.SaveRegisters(registers);
        return Run(s_gcBeforeScan, ~(nuint)registers);
    }

    // Zeroes the dead stack below the caller's frame, where the frame that saves the caller's registers is made next.
    // That frame is scanned (it is above the cut), and the slots the JIT gives it would otherwise still hold whatever
    // earlier calls left there: a copy of a block's address (the reports of the last scan are made at this depth) would
    // keep that block from being reported.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ClearDeadStack()
    {
        byte* dead = stackalloc byte[DeadStackBytes];
        new Span<byte>(dead, DeadStackBytes).Clear();
    }

    private const int DeadStackBytes = 16 << 10;

    private static LeakScanResult Run(bool collect, nuint callerStackComplement)
    {
        LeakScanResult result = RunLocked(collect, callerStackComplement);
        Telemetry.KmemTelemetry.ScanCompleted(result);
        return result;
    }

    private static LeakScanResult RunLocked(bool collect, nuint callerStackComplement)
    {
        if (s_disabled)
            throw new InvalidOperationException("kmemleak is disabled; only 'clear' is accepted");
        lock (s_scanLock)
        {
            KmemMap.EnsureStarted();
            ScanOutcome outcome;
            long start = LeakScanner.NowMs;
            long gcStart = Stopwatch.GetTimestamp();
            if (collect)
            {
                // Aggressive: blocking, compacting, and free GC memory goes back to the OS, so stale copies of pointers
                // in dead objects (a formatted address leaves a boxed copy behind) are wiped, not just unreachable.
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            }
            TimeSpan gcTime = collect ? Stopwatch.GetElapsedTime(gcStart) : TimeSpan.Zero;
            bool process = s_processRoots && Platform.OsPages.Process.IsSupported;
            if (s_processRoots && !process && !s_rootsUnavailableSaid)
            {
                s_rootsUnavailableSaid = true;
                KmemDiagnostics.Publish(KmemMessageKind.Warning,
                    $"kmemleak: process roots are not available on {System.Runtime.InteropServices.RuntimeInformation.OSDescription}; scanning registered roots only");
            }
            try
            {
                outcome = LeakScanner.Run(s_minAgeMs, s_unrefScans, new RootOptions(process, s_stackScan, callerStackComplement), static () => s_disabled);
            }
            catch (OutOfMemoryException)
            {
                Disable("Cannot allocate a kmemleak_object structure");
                throw;
            }
            s_last = outcome.Unreferenced;
            if (outcome.NewLeaks > 0)
            {
                s_leaksFound = true;
                KmemDiagnostics.Publish(KmemMessageKind.Warning, $"kmemleak: {outcome.NewLeaks} new suspected memory leaks (see Kmemleak.Read())");
            }
            List<Unreferenced> found = outcome.Unreferenced; // never changed after the scan: the reports can be made later
            IReadOnlyList<LeakReport> Reports(bool newOnly)
            {
                var sites = new Dictionary<uint, string>();
                return found.Where(u => !newOnly || u.New).Select(u => LeakReportFormatter.ToReport(u, start, sites)).ToList();
            }
            if (outcome.ProcessRootsFailure is { } why && why != s_rootsFailureSaid)
                KmemDiagnostics.Publish(KmemMessageKind.Warning, $"kmemleak: cannot read the process roots ({why}); this scan used registered roots only");
            s_rootsFailureSaid = outcome.ProcessRootsFailure;
            s_lastStartMs = start;
            LeakTally Tally(string type)
            {
                int direct = 0, isNew = 0, ofType = 0;
                int last = -1;
                bool match = false;
                foreach (Unreferenced u in found)
                {
                    direct += u.Direct ? 1 : 0;
                    isNew += u.New ? 1 : 0;
                    if (u.TypeIndex != last) // leaks of one type come in runs
                        (last, match) = (u.TypeIndex, (Types.TypeRegistry.ByIndex(u.TypeIndex)?.ShortDesc ?? "") == type); // as reports name it
                    ofType += match ? 1 : 0;
                }
                return new LeakTally(found.Count, direct, isNew, ofType);
            }
            LeakScanResult result = new(found.Count, () => Reports(newOnly: false), () => Reports(newOnly: true), Tally, s_lastStats = new LeakScanStats(outcome.Objects, outcome.BytesScanned, outcome.Duration + gcTime)
            {
                GcTime = gcTime,
                ProcessRoots = outcome.ProcessRootsRead,
                ProcessRootBytes = outcome.ProcessRootBytes,
                ProcessRootBytesUnreadable = outcome.ProcessRootBytesUnreadable,
                ProcessRootRanges = outcome.ProcessRootRanges,
                ProcessRootTime = outcome.ProcessRootTime,
                MarkTime = outcome.MarkTime,
                ClassifyTime = outcome.ClassifyTime,
                Passes = outcome.Passes,
            });
            LeakScanner.FindingsReadBy(found, result); // the list's memory serves a later scan once the result is gone
            return result;
        }
    }

    /// <summary>Where the process roots hold a reference into the object at <paramref name="ptr"/> right now: each location
    /// with the mapping it lies in, as /proc/self/maps names it, and for a stack the thread. For "why is this not
    /// reported?" questions. The caller's own copy of the pointer, if it keeps one, is listed too.</summary>
    public static IReadOnlyList<string> FindRootReferences(void* ptr)
    {
        nuint ptrComplement = ~(nuint)ptr; // kept complemented across the call below
        ClearDeadStack(); // as Scan: the marker frame below is made on clean stack
        return FindRootReferencesOf(ptrComplement);
    }

    [MethodImpl(MethodImplOptions.NoInlining)] // like Scan: the frame that marks where the detector's stack begins
    private static IReadOnlyList<string> FindRootReferencesOf(nuint ptrComplement)
    {
        byte* registers = stackalloc byte[Platform.OsPages.RegisterBytes];
        Platform.OsPages.SaveRegisters(registers);
        return FindRootReferencesFrom(~(nuint)registers, ptrComplement);
    }

    private static IReadOnlyList<string> FindRootReferencesFrom(nuint markerC, nuint ptrComplement)
    {
        TrackedObject? o = Resolve((void*)~ptrComplement);
        nuint startC = o is null ? ptrComplement : ~BlockStartOf(o.Value), size = o is null ? 1 : BlockSizeOf(o.Value);
        Platform.IProcessMemory process = Platform.OsPages.Process;
        if (!process.IsSupported)
            return Array.Empty<string>();
        List<RootRange> roots;
        List<nuint> found;
        lock (s_scanLock)
        {
            roots = ProcessRoots.Collect(process, s_stackScan, Platform.OsPages.Provider.CurrentThreadId(), markerC,
                RootReader.WorkerStacks());
            found = RootReader.Locate(process, roots, startC, size);
        }
        var maps = File.Exists("/proc/self/maps") ? File.ReadAllLines("/proc/self/maps") : Array.Empty<string>();
        // Each thread whose stack pointer is known, with the mapping that holds it.
        int ownTid = Platform.OsPages.Provider.CurrentThreadId();
        var stacks = new List<(int Tid, nuint Sp, string Mapping)>();
        foreach (Platform.ThreadStack t in process.Threads())
        {
            nuint sp = t.Tid == ownTid ? ~markerC : ~t.StackPointerComplement;
            if (t.Tid == ownTid || t.StackPointerComplement != 0)
                stacks.Add((t.Tid, sp, MappingOf(maps, sp)));
        }
        var result = new List<string>();
        foreach (nuint c in found)
        {
            nuint at = ~c;
            string name = MappingOf(maps, at);
            string stack = "";
            foreach ((int tid, nuint sp, string mapping) in stacks)
            {
                if (mapping == name && name != "?")
                {
                    string comm = File.Exists($"/proc/self/task/{tid}/comm") ? File.ReadAllText($"/proc/self/task/{tid}/comm").Trim() : "";
                    stack = $" (the stack of thread {tid} \"{comm}\", {(at >= sp ? "live" : "dead")} part)";
                }
            }
            result.Add($"0x{at:x} in {name}{stack}");
        }
        return result;
    }

    private static string MappingOf(string[] maps, nuint at) => maps.FirstOrDefault(l =>
    {
        int dash = l.IndexOf('-'), sp = l.IndexOf(' ');
        return dash > 0 && sp > dash
            && ulong.TryParse(l.AsSpan(0, dash), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong lo)
            && ulong.TryParse(l.AsSpan(dash + 1, sp - dash - 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong hi)
            && at >= lo && at < hi;
    }) ?? "?";

    /// <summary>A result holding a chosen subset of leaks (e.g. one type's), for <see cref="LeakScanResult.Summary"/>.</summary>
    public static LeakScanResult ResultOf(IReadOnlyList<LeakReport> leaks, LeakScanStats stats)
    {
        ArgumentNullException.ThrowIfNull(leaks);
        ArgumentNullException.ThrowIfNull(stats);
        return new LeakScanResult(leaks, stats);
    }

    // ---- internals ----

    /// <summary>A <see cref="Pools.KmemMemoryPool"/> buffer whose owner was collected without Dispose: reported in
    /// <see cref="Read"/> (in the kernel's form, the object already freed) until <c>clear</c>.</summary>
    internal static void RecordPoolLeak(nint block, int size, string type, string stack)
    {
        string text = $"unreferenced object 0x{block:x} (size {size}):\n  comm \"finalizer\", pid {Environment.ProcessId}, jiffies {Math.Max(0, LeakScanner.NowMs)}\n"
            + $"  memory pool buffer of type {type} collected without Dispose (its block was freed)\n  backtrace:\n    {stack}\n";
        lock (s_scanLock)
        {
            if (s_poolLeaks.Count < 10_000)
                s_poolLeaks.Add(new PoolLeakEntry($"0x{block:x}", size, type, stack.Split('\n')[0].Trim(), text));
        }
    }

    /// <summary>The last scan's result, the pool leaks and the report text, taken together (one lock, so they agree).</summary>
    internal static (LeakScanResult Result, IReadOnlyList<PoolLeakEntry> PoolLeaks, string Report) Snapshot()
    {
        lock (s_scanLock)
            return (Current(), s_poolLeaks.ToArray(), Read());
    }

    private static void Clear()
    {
        lock (s_scanLock)
        {
            s_poolLeaks.Clear();
            if (s_disabled)
            {
                LeakTracking.DropAll();
                s_last = new();
                return;
            }
            // Every reported, currently unreferenced object is painted gray: never reported again, scanned as a root.
            foreach (Unreferenced u in s_last)
                if (StillThere(u))
                    LeakScanner.StateOf(u.Object) |= LeakState.Root;
            s_last = new();
            s_leaksFound = false;
        }
    }

    private static void Disable(string message)
    {
        if (s_disabled)
            return;
        s_disabled = true;
        LeakTracking.Enabled = false;
        StopAutoScan();
        KmemDiagnostics.Publish(KmemMessageKind.Warning, "kmemleak: " + message);
        if (s_leaksFound)
            KmemDiagnostics.Publish(KmemMessageKind.Warning,
                "kmemleak: Kmemleak disabled without freeing internal data. Reclaim the memory with Kmemleak.Write(\"clear\").");
    }

    private static string Dump(void* addr)
    {
        TrackedObject? o = Resolve(addr);
        LeakRecord? phys = null;
        if (o is null)
        {
            lock (LeakTracking.Lock)
                phys = LeakTracking.PhysContaining((ulong)addr);
            if (phys is null)
                throw new ArgumentException($"Unknown object at 0x{(nuint)addr:x}");
            o = new TrackedObject(phys, 0, 0);
        }
        TrackedObject obj = o.Value;
        LeakState state = LeakScanner.StateOf(obj);
        int minCount = LeakStates.MinCount(state, obj.Record?.MinCount ?? 1);
        uint context = obj.Record?.Context ?? SlabMeta.Site(SlabMeta.Of(obj.Unit), obj.Slot);
        uint crc = obj.Record?.Crc ?? LeakScanner.SlabCrc(SlabMeta.Of(obj.Unit), obj.Slot);
        int flags = 0x01 | ((state & LeakState.Reported) != 0 ? 0x02 : 0) | ((state & LeakState.NoScan) != 0 ? 0x04 : 0)
            | (obj.Record?.Kind == RecordKind.Phys ? 0x10 : 0) | (obj.Record?.Kind == RecordKind.PerCpu ? 0x20 : 0);
        string kind = obj.Record?.Kind switch { RecordKind.PerCpu => " (percpu)", RecordKind.Phys => " (phys)", _ => "" };
        AllocContexts.ThreadInfo thread = AllocContexts.ThreadOf(context);
        var o2 = new StringBuilder();
        o2.Append($"Object{kind} 0x{StartOf(obj):x} (size {SizeOf(obj)}):\n");
        o2.Append($"  comm \"{thread.Name}\", pid {thread.OsThreadId}, jiffies {LeakScanner.BirthMsOf(obj)}\n");
        o2.Append($"  min_count = {minCount}\n  count = {obj.Record?.Count ?? 0}\n  flags = 0x{flags:x}\n  checksum = {crc}\n");
        o2.Append("  backtrace:\n    ").Append(AllocContexts.Describe(context)).Append('\n');
        return o2.ToString();
    }

    private static bool StillThere(Unreferenced u)
    {
        if (u.Object.Record is { } r)
            return LeakTracking.IsRegistered(r);
        byte* meta = SlabMeta.Of(u.Object.Unit);
        return SlabMeta.Owner(meta, u.Object.Slot) != 0 && SlabMeta.Stamp(meta, u.Object.Slot) == u.Stamp;
    }

    private static string? TraceOf(Unreferenced u)
    {
        lock (s_traces)
            return u.Kind is null or RecordKind.Large or RecordKind.Vmalloc or RecordKind.PerCpu
                && s_traces.TryGetValue(u.Offset, out var t) && t.Stamp == u.Stamp ? t.Trace : null;
    }

    private static TrackedObject? Resolve(void* p) => LeakScanner.Resolve((nuint)p);

    // Where the object starts in memory (a DIAGNOSTIC block's front redzone included).
    private static nuint BlockStartOf(TrackedObject o)
    {
        if (o.Record is { } r)
            return r.Kind switch { RecordKind.Foreign => ~r.Key, RecordKind.Phys => ~r.Key, _ => (nuint)KmemMap.Base + r.Key };
        return (nuint)(KmemMap.UnitAddress(o.Unit) + (nuint)o.Slot * SizeClasses.SizeOf(PageMap.Entry(o.Unit)->Class));
    }

    private static nuint BlockSizeOf(TrackedObject o) => o.Record?.Size ?? SizeClasses.SizeOf(PageMap.Entry(o.Unit)->Class);

    // Bytes of a redzoned block before the address its caller got (0 for every other object).
    private static nuint FrontOf(TrackedObject o) =>
        o.Record is null && (SlabMeta.Owner(SlabMeta.Of(o.Unit), o.Slot) & Checks.Redzones.OwnerFlag) != 0 ? (nuint)Checks.Redzones.Front : 0;

    // The object as its caller knows it: the address malloc returned and the size asked for (they differ from the
    // block's only for a DIAGNOSTIC block with redzones).
    private static nuint StartOf(TrackedObject o) => BlockStartOf(o) + FrontOf(o);

    private static nuint SizeOf(TrackedObject o) =>
        FrontOf(o) == 0 ? BlockSizeOf(o) : Checks.Redzones.RequestedSize((byte*)BlockStartOf(o), BlockSizeOf(o));

    // Sets a state bit on the object starting exactly at ptr; false if there is none.
    private static bool Paint(void* ptr, LeakState bit)
    {
        TrackedObject? o = Resolve(ptr);
        if (o is null || StartOf(o.Value) != (nuint)ptr)
        {
            if (o is not null)
                Debug($"Found object by alias at 0x{(nuint)ptr:x}");
            return false;
        }
        lock (LeakTracking.Lock)
            LeakScanner.StateOf(o.Value) |= bit;
        return true;
    }

    /// <summary>Marks a Kmem block (used by the allocators, e.g. vmalloc descriptors as roots).</summary>
    internal static void MarkKmemBlock(void* ptr, LeakState bit)
    {
        if (LeakTracking.Enabled)
            Paint(ptr, bit);
    }

    private static void PaintPhys(ulong phys, LeakState bit, string colour)
    {
        if (phys == 0 || s_disabled)
            return;
        lock (LeakTracking.Lock)
        {
            LeakRecord? r = LeakTracking.PhysContaining(phys);
            if (r is null || (ulong)~r.Key != phys)
                Debug($"Trying to color unknown object at 0x{phys:x} as {colour}");
            else
                r.State |= bit;
        }
    }

    private static void Retrack(void* start, string what)
    {
        if (start == null || s_disabled)
            return;
        TrackedObject? o = Resolve(start);
        if (o is null || StartOf(o.Value) != (nuint)start)
            throw new ArgumentException($"0x{(nuint)start:x} is not a Kmem object: {what}");
        lock (LeakTracking.Lock)
        {
            ref LeakState s = ref LeakScanner.StateOf(o.Value);
            if ((s & LeakState.Black) == 0)
                throw new ArgumentException($"Cannot insert 0x{(nuint)start:x} into the object search tree (overlaps existing)");
            s &= ~LeakState.Black;
        }
    }

    private static LeakRecord NewRecord(RecordKind kind, nuint key, nuint size, int minCount, string member, string file, int line)
    {
        byte* tc = ThreadCaches.Current();
        uint context = ThreadCaches.Context(tc, CallSites.Intern(member, file, line));
        (uint thread, uint stamp) = LeakTracking.Birth(tc);
        LeakState state = minCount == -1 ? LeakState.Black : minCount == 0 ? LeakState.Root : LeakState.None;
        return new LeakRecord { Kind = kind, Key = key, Size = size, MinCount = Math.Max(minCount, 0), State = state, Context = context, Thread = thread, Stamp = stamp };
    }

    private static void SplitAround(LeakRecord r, nuint offset, nuint size, RecordKind kind, string member, string file, int line)
    {
        nuint start = ~r.Key; // foreign and physical keys are both complemented
        nuint cut = start + offset, cutEnd = size > r.Size - offset ? start + r.Size : cut + size;
        LeakTracking.Remove(kind, r.Key, out _);
        int minCount = LeakStates.MinCount(r.State, r.MinCount);
        if (cut > start)
            AddPiece(kind, start, cut - start, minCount, member, file, line);
        if (cutEnd < start + r.Size)
            AddPiece(kind, cutEnd, start + r.Size - cutEnd, minCount, member, file, line);
    }

    private static void AddPiece(RecordKind kind, nuint start, nuint size, int minCount, string member, string file, int line)
    {
        LeakTracking.Add(NewRecord(kind, ~start, size, minCount, member, file, line));
    }

    private static void CheckGfp(MallocFlags gfp)
    {
        if ((gfp & ~(MallocFlags.NoWait | MallocFlags.Zero | MallocFlags.CanFail)) != 0)
            throw new ArgumentOutOfRangeException(nameof(gfp), gfp, "unknown flags");
    }

    private static void Debug(string message)
    {
        if (s_debug)
            KmemDiagnostics.Publish(KmemMessageKind.Warning, "kmemleak: " + message);
    }

    /// <summary>Records the managed stack of a new Kmem block when <c>trace=on</c> (called by the allocator).</summary>
    internal static void RecordTrace(void* block, uint stamp)
    {
        // Frames above Kmem's own: the allocation API and this method are skipped.
        string trace = new StackTrace(2, fNeedFileInfo: true).ToString();
        lock (s_traces)
            s_traces[(nuint)((byte*)block - KmemMap.Base)] = (stamp, trace);
    }

    // ---- automatic scanning ----

    private static void StartAutoScan()
    {
        lock (s_scanLock)
        {
            if (s_autoThread is not null)
                return;
            s_autoStop = false;
            s_autoThread = new Thread(AutoScanLoop) { IsBackground = true, Name = "kmemleak", Priority = ThreadPriority.BelowNormal };
            s_autoThread.Start();
        }
        KmemDiagnostics.Publish(KmemMessageKind.Warning, "kmemleak: Automatic memory scanning thread started");
    }

    private static void StopAutoScan()
    {
        Thread? t;
        lock (s_scanLock)
        {
            t = s_autoThread;
            s_autoThread = null;
            s_autoStop = true;
        }
        if (t is null)
            return;
        s_autoWake.Set();
        if (t != Thread.CurrentThread)
            t.Join();
        KmemDiagnostics.Publish(KmemMessageKind.Warning, "kmemleak: Automatic memory scanning thread ended");
    }

    private static void AutoScanLoop()
    {
        // First scan after 60 s, then a pause of the period from the end of one scan to the start of the next.
        int wait = Math.Min(60, s_autoPeriodSeconds) * 1000;
        byte* marker = stackalloc byte[16]; // this thread's own stack holds nothing of the program's
        while (!s_autoStop)
        {
            s_autoWake.WaitOne(wait);
            if (s_autoStop || s_disabled)
                return;
            try
            {
                Run(collect: false, ~(nuint)marker); // automatic scans never force a GC on the program
            }
            catch (Exception e)
            {
                if (s_disabled)
                    return;
                KmemDiagnostics.Publish(KmemMessageKind.Warning, $"kmemleak: an automatic scan failed: {e.Message}");
            }
            wait = s_autoPeriodSeconds * 1000;
        }
    }
}

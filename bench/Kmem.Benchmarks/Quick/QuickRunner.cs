// Quick/QuickRunner.cs — the "quick" mode: times 64-byte allocate+free pairs (tight and batch-of-1000 shapes) for
// Kmem and the peer allocators with Stopwatch, prints medians and Kmem/peer ratios, and optionally writes JSON.
// Also re-launches itself with the glibc static-TLS tunable so jemalloc can be dlopen'ed, and runs the leak detector's
// workloads (TrackingWorkload, LeakbenchWorkload) after the pairs.
using System.ComponentModel;
using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using Kmem.Benchmarks.Peers;
using Kmem.Benchmarks.Report;

namespace Kmem.Benchmarks.Quick;

/// <summary>Settings of one quick run.</summary>
/// <param name="JsonPath">Where to write the JSON result file, or null for none.</param>
/// <param name="Repetitions">Timed repetitions per (workload, subject); the median is reported.</param>
/// <param name="PairsPerRepetition">Allocate+free pairs per repetition (rounded down to a multiple of 1000).</param>
internal sealed record QuickOptions(string? JsonPath, int Repetitions = 7, int PairsPerRepetition = 4_000_000);

/// <summary>The quick benchmark: a few seconds, Stopwatch timing, medians over repetitions.</summary>
internal static unsafe class QuickRunner
{
    public const string TightWorkload = "pair64-tight";
    public const string BatchWorkload = "pair64-batch1000";

    private const nuint BlockSize = 64;
    private const int BatchSize = 1000;
    private const string ChildMarker = "KMEM_BENCH_CHILD";
    private static readonly TimeSpan s_warmupPerCell = TimeSpan.FromMilliseconds(150);

    /// <summary>Keeps every checksum alive so the JIT cannot drop the work that produced it.</summary>
    private static nuint s_sink;

    /// <summary>
    /// Runs the quick mode. <paramref name="originalArgs"/> are the process arguments, passed on unchanged when the
    /// run re-launches itself. Returns the process exit code.
    /// </summary>
    public static int Run(QuickOptions options, string[] originalArgs)
    {
        if (TryRelaunchWithStaticTls(originalArgs) is int childExitCode)
        {
            return childExitCode;
        }

        Cell[] cells = BuildCells(out List<string> skipped);
        int repetitions = options.Repetitions;
        int pairs = Math.Max(BatchSize, options.PairsPerRepetition / BatchSize * BatchSize);
        string machine = BenchJson.DescribeMachine();

        Console.WriteLine("Kmem quick benchmark: 64-byte Malloc+Free pairs");
        Console.WriteLine($"machine: {machine}");
        Console.WriteLine($"method:  {repetitions} repetitions x {pairs:N0} pairs per (workload, subject) after warm-up;"
            + " median ns per pair, min-max in brackets");
        foreach (string note in skipped)
        {
            Console.WriteLine($"note:    {note}");
        }

        Console.WriteLine();

        WarmUp(cells, pairs);
        Measure(cells, repetitions, pairs);

        PrintTable(cells);
        PrintRatios(cells);

        // The leak detector's workloads come last, leakbench at the very end: its 1M blocks stay live until exit.
        List<BenchRun> trackingRuns = TrackingWorkload.Run(repetitions, pairs);
        List<BenchRun> rootRuns = RootScanWorkload.Run();
        LeakbenchOutcome leakbench = LeakbenchWorkload.Run();

        if (options.JsonPath is { } jsonPath)
        {
            BenchRun[] runs =
            [
                .. cells.Select(c => new BenchRun(c.Workload, c.Subject, Math.Round(c.Median, 2), "ns")),
                .. trackingRuns,
                .. rootRuns,
                .. leakbench.Runs,
            ];
            BenchJson.Write(jsonPath, new BenchReport(machine, runs));
            Console.WriteLine();
            Console.WriteLine($"wrote {jsonPath}");
        }

        GC.KeepAlive(s_sink);
        return leakbench.CountsOk ? 0 : 1;
    }

    /// <summary>The "scan" mode: the leak-scan workloads only (root scans, then leakbench).</summary>
    public static int RunScans(QuickOptions options)
    {
        string machine = BenchJson.DescribeMachine();
        Console.WriteLine("Kmem leak-scan benchmark");
        Console.WriteLine($"machine: {machine}");
        List<BenchRun> rootRuns = RootScanWorkload.Run();
        LeakbenchOutcome leakbench = LeakbenchWorkload.Run();
        if (options.JsonPath is { } jsonPath)
        {
            BenchJson.Write(jsonPath, new BenchReport(machine, [.. rootRuns, .. leakbench.Runs]));
            Console.WriteLine();
            Console.WriteLine($"wrote {jsonPath}");
        }

        return leakbench.CountsOk ? 0 : 1;
    }

    /// <summary>The "diagnostic" mode: DIAGNOSTIC off against on, for pairs and a mixed-size workload.</summary>
    public static int RunDiagnostic(QuickOptions options)
    {
        string machine = BenchJson.DescribeMachine();
        Console.WriteLine("Kmem DIAGNOSTIC benchmark");
        Console.WriteLine($"machine: {machine}");
        int pairs = Math.Max(BatchSize, options.PairsPerRepetition / BatchSize * BatchSize);
        List<BenchRun> runs = DiagnosticWorkload.Run(options.Repetitions, pairs);
        if (options.JsonPath is { } jsonPath)
        {
            BenchJson.Write(jsonPath, new BenchReport(machine, [.. runs]));
            Console.WriteLine();
            Console.WriteLine($"wrote {jsonPath}");
        }

        return 0;
    }

    /// <summary>pair64-tight's kmem loop, for <see cref="TrackingWorkload"/> (the same code, the same type).</summary>
    internal static nuint KmemTight(int pairs) => Tight<KmemAllocator>(pairs);

    /// <summary>
    /// How to start this program again: the apphost, or <c>dotnet</c> plus this dll; arguments still to be added.
    /// Null when the process path is unknown.
    /// </summary>
    internal static ProcessStartInfo? SelfStartInfo()
    {
        string? processPath = Environment.ProcessPath;
        if (processPath is null)
        {
            return null;
        }

        var start = new ProcessStartInfo(processPath) { UseShellExecute = false };

        // Under an apphost the process is this program; under "dotnet x.dll" it is the host and needs the dll.
        string? entryPath = Assembly.GetEntryAssembly()?.Location;
        if (!string.IsNullOrEmpty(entryPath)
            && !string.Equals(Path.GetFileName(processPath), Path.GetFileNameWithoutExtension(entryPath),
                StringComparison.Ordinal))
        {
            start.ArgumentList.Add(entryPath);
        }

        return start;
    }

    // ---- re-launch for jemalloc ----------------------------------------------------------------------------------

    /// <summary>
    /// jemalloc uses initial-exec TLS, which glibc refuses to dlopen into a process whose static TLS surplus is used
    /// up (as .NET's is). When <c>GLIBC_TUNABLES</c> does not set <see cref="NativePeers.StaticTlsTunable"/>, run this
    /// same program again as a child with it set, sharing our console, and return the child's exit code; return null
    /// to carry on in this process (tunable already set, not Linux, or the child could not start).
    /// </summary>
    private static int? TryRelaunchWithStaticTls(string[] originalArgs)
    {
        string tunables = Environment.GetEnvironmentVariable("GLIBC_TUNABLES") ?? "";
        if (!OperatingSystem.IsLinux()
            || tunables.Contains(NativePeers.StaticTlsTunable, StringComparison.Ordinal)
            || Environment.GetEnvironmentVariable(ChildMarker) is not null)
        {
            return null;
        }

        if (SelfStartInfo() is not { } start)
        {
            Console.WriteLine("note:    cannot re-launch with the static-TLS tunable (no process path); jemalloc may be skipped");
            return null;
        }

        foreach (string arg in originalArgs)
        {
            start.ArgumentList.Add(arg);
        }

        string setting = NativePeers.StaticTlsSetting;
        start.Environment["GLIBC_TUNABLES"] = tunables.Length == 0 ? setting : $"{tunables}:{setting}";
        start.Environment[ChildMarker] = "1";

        Console.WriteLine($"note:    re-running with GLIBC_TUNABLES={start.Environment["GLIBC_TUNABLES"]} so jemalloc can be loaded");
        Console.Out.Flush();
        try
        {
            // Not redirected: the child writes straight to our stdout/stderr, so its output streams as it runs.
            using Process child = Process.Start(start)
                ?? throw new InvalidOperationException("Process.Start returned null");
            child.WaitForExit();
            return child.ExitCode;
        }
        catch (Exception e) when (e is Win32Exception or InvalidOperationException)
        {
            Console.WriteLine($"note:    re-launch failed ({e.Message}); running here, jemalloc may be skipped");
            return null;
        }
    }

    // ---- subjects and workloads ----------------------------------------------------------------------------------

    /// <summary>One (workload, subject) pair: how to run it and the ns-per-pair figure of each repetition.</summary>
    private sealed class Cell(string workload, string subject, Func<int, nuint> run)
    {
        public string Workload { get; } = workload;
        public string Subject { get; } = subject;
        public Func<int, nuint> Run { get; } = run;
        public List<double> Samples { get; } = [];

        public double Median
        {
            get
            {
                double[] sorted = [.. Samples.Order()];
                int mid = sorted.Length / 2;
                return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
            }
        }
    }

    private static Cell[] BuildCells(out List<string> skipped)
    {
        skipped = [];
        var subjects = new List<(string Name, Func<int, nuint> Tight, Func<int, nuint> Batch)>
        {
            ("kmem", Tight<KmemAllocator>, Batch<KmemAllocator>),
            ("nativememory", Tight<NativeMemoryAllocator>, Batch<NativeMemoryAllocator>),
        };

        if (NativePeers.HasMimalloc)
        {
            subjects.Add(("mimalloc", Tight<MimallocAllocator>, Batch<MimallocAllocator>));
        }
        else
        {
            skipped.Add($"mimalloc skipped: {NativePeers.MimallocNote}");
        }

        if (NativePeers.HasJemalloc)
        {
            subjects.Add(("jemalloc", Tight<JemallocAllocator>, Batch<JemallocAllocator>));
        }
        else
        {
            skipped.Add($"jemalloc skipped: {NativePeers.JemallocNote}");
        }

        return
        [
            .. subjects.Select(s => new Cell(TightWorkload, s.Name, s.Tight)),
            .. subjects.Select(s => new Cell(BatchWorkload, s.Name, s.Batch)),
        ];
    }

    /// <summary>A 64-byte allocator under test; implemented by structs so each generic instantiation is direct code.</summary>
    private interface IAllocator
    {
        static abstract void* Alloc();
        static abstract void Free(void* p);
    }

    private readonly struct KmemAllocator : IAllocator
    {
        // One type for the whole run; every call below is one fixed site (the caller-info defaults).
        private static readonly MallocType s_type = new("bench64", "quick benchmark 64-byte pairs");

        public static void* Alloc() => Heap.Malloc(BlockSize, s_type);
        public static void Free(void* p) => Heap.Free(p, s_type);
    }

    private readonly struct NativeMemoryAllocator : IAllocator
    {
        public static void* Alloc() => NativeMemory.Alloc(BlockSize);
        public static void Free(void* p) => NativeMemory.Free(p);
    }

    private readonly struct MimallocAllocator : IAllocator
    {
        public static void* Alloc() => NativePeers.MiMalloc(BlockSize);
        public static void Free(void* p) => NativePeers.MiFree(p);
    }

    private readonly struct JemallocAllocator : IAllocator
    {
        public static void* Alloc() => NativePeers.JeMallocx(BlockSize, 0);
        public static void Free(void* p) => NativePeers.JeSdallocx(p, BlockSize, 0);
    }

    /// <summary>pair64-tight: <c>p = malloc(64); *p = i; free(p)</c>, <paramref name="pairs"/> times.</summary>
    private static nuint Tight<T>(int pairs) where T : struct, IAllocator
    {
        nuint sum = 0;
        for (int i = 0; i < pairs; i++)
        {
            byte* p = (byte*)T.Alloc();
            *p = (byte)i;
            sum += *p;
            T.Free(p);
        }

        return sum;
    }

    /// <summary>
    /// pair64-batch1000: 1000 mallocs into a pointer array (writing a byte into each), then 1000 frees in the same
    /// order; repeated until <paramref name="pairs"/> pairs are done.
    /// </summary>
    private static nuint Batch<T>(int pairs) where T : struct, IAllocator
    {
        void** slots = stackalloc void*[BatchSize];
        nuint sum = 0;
        for (int round = pairs / BatchSize; round > 0; round--)
        {
            for (int i = 0; i < BatchSize; i++)
            {
                byte* p = (byte*)T.Alloc();
                *p = (byte)i;
                slots[i] = p;
            }

            for (int i = 0; i < BatchSize; i++)
            {
                byte* p = (byte*)slots[i];
                sum += *p;
                T.Free(p);
            }
        }

        return sum;
    }

    // ---- timing ---------------------------------------------------------------------------------------------------

    /// <summary>
    /// Runs every cell in short chunks for a while (two passes) so each loop and the allocators' own code reach
    /// tier-1 JIT code and the allocators' caches are populated before anything is timed.
    /// </summary>
    private static void WarmUp(Cell[] cells, int pairs)
    {
        int chunk = Math.Max(BatchSize, pairs / 40 / BatchSize * BatchSize);
        long budget = (long)(s_warmupPerCell.TotalSeconds * Stopwatch.Frequency);
        for (int pass = 0; pass < 2; pass++)
        {
            foreach (Cell cell in cells)
            {
                long start = Stopwatch.GetTimestamp();
                int calls = 0;
                while (calls < 40 || Stopwatch.GetTimestamp() - start < budget)
                {
                    s_sink += cell.Run(chunk);
                    calls++;
                }
            }
        }
    }

    /// <summary>
    /// Times each cell once per repetition, rotating the order every repetition so slow drift (frequency, noisy
    /// neighbours) spreads over all subjects instead of landing on one.
    /// </summary>
    private static void Measure(Cell[] cells, int repetitions, int pairs)
    {
        for (int rep = 0; rep < repetitions; rep++)
        {
            for (int k = 0; k < cells.Length; k++)
            {
                Cell cell = cells[(k + rep) % cells.Length];
                long start = Stopwatch.GetTimestamp();
                s_sink += cell.Run(pairs);
                long elapsed = Stopwatch.GetTimestamp() - start;
                cell.Samples.Add(elapsed * 1e9 / Stopwatch.Frequency / pairs);
            }
        }
    }

    // ---- output ---------------------------------------------------------------------------------------------------

    private static void PrintTable(Cell[] cells)
    {
        Console.WriteLine($"{"workload",-18} {"subject",-13} {"ns/pair",8}  (min-max)");
        foreach (Cell cell in cells)
        {
            Console.WriteLine($"{cell.Workload,-18} {cell.Subject,-13} {cell.Median,8:F2}  "
                + $"({cell.Samples.Min():F2}-{cell.Samples.Max():F2})");
        }
    }

    private static void PrintRatios(Cell[] cells)
    {
        Console.WriteLine();
        Console.WriteLine("ratio kmem/peer (median over median; below 1.00 means Kmem is faster):");
        foreach (IGrouping<string, Cell> workload in cells.GroupBy(c => c.Workload))
        {
            Cell? kmem = workload.FirstOrDefault(c => c.Subject == "kmem");
            if (kmem is null)
            {
                continue;
            }

            IEnumerable<string> ratios = workload
                .Where(c => c != kmem)
                .Select(c => $"kmem/{c.Subject} {kmem.Median / c.Median:F2}");
            Console.WriteLine($"{workload.Key,-18} {string.Join("   ", ratios)}");
        }
    }
}

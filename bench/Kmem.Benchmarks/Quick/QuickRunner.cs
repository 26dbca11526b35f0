// Quick/QuickRunner.cs — the hand-written harness's "quick", "full" and "scan" modes: re-launches itself with the glibc
// static-TLS tunable so jemalloc can be dlopen'ed, times the allocation workloads for every subject (Kmem with leak
// tracking off in a KMEMLEAK=off child, Kmem with tracking on here, the native peers), runs the scan, memory and
// statistics workloads, then prints the tables and the targets and writes the JSON file and the docs section.
using System.ComponentModel;
using System.Diagnostics;
using Kmem.Benchmarks.Peers;
using Kmem.Benchmarks.Report;

namespace Kmem.Benchmarks.Quick;

/// <summary>Settings of one run; null repetitions or pairs take the mode's defaults.</summary>
/// <param name="JsonPath">Where to write the JSON result file, or null for none.</param>
/// <param name="DocsPath">The markdown file whose generated section to rewrite, or null for none.</param>
/// <param name="Repetitions">Timed repetitions per (workload, subject); the median is reported.</param>
/// <param name="PairsPerRepetition">The --pairs figure every workload's operations per repetition derive from.</param>
internal sealed record QuickOptions(string? JsonPath, string? DocsPath = null, int? Repetitions = null,
    int? PairsPerRepetition = null);

internal static class QuickRunner
{
    private const string ChildMarker = "KMEM_BENCH_CHILD";
    private const string Kmem = AllocWorkloads.Kmem;
    private const string KmemTracking = "kmem-tracking";

    /// <summary>Runs the quick or (<paramref name="full"/>) the full mode; returns the process exit code.</summary>
    public static int Run(QuickOptions options, bool full, string[] originalArgs)
    {
        if (TryRelaunchWithStaticTls(originalArgs) is int childExitCode)
        {
            return childExitCode;
        }

        int repetitions = options.Repetitions ?? (full ? 11 : 5);
        int pairs = Math.Max(4000, (options.PairsPerRepetition ?? (full ? 4_000_000 : 2_000_000)) / 1000 * 1000);
        int rssRuns = full ? 3 : 1;
        string machine = BenchJson.DescribeMachine();
        string method = $"{(full ? "full" : "quick")} mode, {repetitions} repetitions per (workload, subject) after"
            + $" warm-up, --pairs {pairs:N0} (64-byte pairs: {pairs:N0} per repetition; mixed and each thread of"
            + $" threads2-scaling: {AllocWorkloads.OpsFor(AllocWorkloads.Mixed, pairs):N0}; producer-consumer:"
            + $" {AllocWorkloads.OpsFor(AllocWorkloads.ProducerConsumer, pairs):N0}); RSS children per subject: {rssRuns}";
        RunInfo info = RunInfo.Capture(originalArgs, method);
        var results = new Results();
        var clock = Stopwatch.StartNew();

        Console.WriteLine($"Kmem benchmarks ({(full ? "full" : "quick")} mode)");
        Console.WriteLine($"machine: {machine}");
        Console.WriteLine($"method:  {method}");

        AllocationWorkloads(results, repetitions, pairs);
        RootScanWorkload.Run(results);
        bool countsOk = true;
        using (var tools = new LeakbenchWorkload.PeerTools(results))
        {
            countsOk &= LeakbenchWorkload.Run(results, 1_000_000, withValgrind: full, tools);
            if (full)
            {
                countsOk &= LeakbenchWorkload.Run(results, 4_000_000, withValgrind: true, tools);
            }
        }

        MemoryWorkloads.RunRss(results, rssRuns);
        MemoryWorkloads.RunStats(results);
        AddTargets(results, full);
        Console.WriteLine();
        Console.WriteLine($"(whole run: {clock.Elapsed.TotalSeconds:F0} s)");
        Finish(machine, info, results, options);
        GC.KeepAlive(Timing.Sink);
        return countsOk ? 0 : 1;
    }

    /// <summary>The "scan" mode: the leak-scan workloads only (sparse-scan, idle-scan, leakbench-1m with LSan).</summary>
    public static int RunScans(QuickOptions options, string[] originalArgs)
    {
        string machine = BenchJson.DescribeMachine();
        RunInfo info = RunInfo.Capture(originalArgs, "scan mode");
        var results = new Results();
        Console.WriteLine("Kmem leak-scan benchmark");
        Console.WriteLine($"machine: {machine}");
        RootScanWorkload.Run(results);
        bool countsOk;
        using (var tools = new LeakbenchWorkload.PeerTools(results))
        {
            countsOk = LeakbenchWorkload.Run(results, 1_000_000, withValgrind: false, tools);
        }

        results.TargetRatio("pointer-sparse root scan >= 60% of read bandwidth", RootScanWorkload.SparseWorkload, Kmem,
            "bandwidth", ">=", 0.60);
        results.TargetRatio("leakbench 1M full scan <= 0.33x LSan", "leakbench-1m", Kmem, "lsan", "<=", 0.33);
        Finish(machine, info, results, options);
        return countsOk ? 0 : 1;
    }

    /// <summary>The "diagnostic" mode: DIAGNOSTIC off against on, for pairs and a mixed-size workload.</summary>
    public static int RunDiagnostic(QuickOptions options)
    {
        string machine = BenchJson.DescribeMachine();
        Console.WriteLine("Kmem DIAGNOSTIC benchmark");
        Console.WriteLine($"machine: {machine}");
        int pairs = Math.Max(1000, (options.PairsPerRepetition ?? 4_000_000) / 1000 * 1000);
        List<BenchRun> runs = DiagnosticWorkload.Run(options.Repetitions ?? 7, pairs);
        if (options.JsonPath is { } jsonPath)
        {
            BenchJson.Write(jsonPath, new BenchReport(machine, [.. runs]));
            Console.WriteLine();
            Console.WriteLine($"wrote {jsonPath}");
        }

        return 0;
    }

    /// <summary>Prints the markdown summary; writes the JSON file and the docs section when asked.</summary>
    private static void Finish(string machine, RunInfo info, Results results, QuickOptions options)
    {
        string block = MarkdownReport.Build(machine, info, results);
        Console.WriteLine();
        Console.WriteLine(block);
        if (options.JsonPath is { } jsonPath)
        {
            BenchJson.Write(jsonPath, BenchJson.From(machine, results, info));
            Console.WriteLine($"wrote {jsonPath}");
        }

        if (options.DocsPath is { } docsPath)
        {
            Console.WriteLine(MarkdownReport.WriteDocs(docsPath, block) is { } error
                ? $"note:    {docsPath} not updated: {error}"
                : $"rewrote the generated section of {docsPath}");
        }
    }

    private static void AddTargets(Results r, bool full)
    {
        r.TargetRatio("64 B pair, tight <= 0.8x mimalloc", AllocWorkloads.Tight, Kmem, AllocWorkloads.Mimalloc, "<=", 0.8);
        r.TargetRatio("64 B pair, batch of 1000 <= 0.8x mimalloc", AllocWorkloads.Batch, Kmem, AllocWorkloads.Mimalloc,
            "<=", 0.8);
        r.TargetRatio("mixed 16 B-4 KiB <= 1.0x mimalloc", AllocWorkloads.Mixed, Kmem, AllocWorkloads.Mimalloc, "<=", 1.0);
        // The same three with MallocBatch: extras, since the targets are about Heap.Malloc/Free.
        r.ExtraRatio("MallocBatch: 64 B pair, tight <= 0.8x mimalloc", AllocWorkloads.Tight, AllocWorkloads.KmemBatch,
            AllocWorkloads.Mimalloc, "<=", 0.8);
        r.ExtraRatio("MallocBatch: 64 B pair, batch of 1000 <= 0.8x mimalloc", AllocWorkloads.Batch,
            AllocWorkloads.KmemBatch, AllocWorkloads.Mimalloc, "<=", 0.8);
        r.ExtraRatio("MallocBatch: mixed <= 1.0x mimalloc", AllocWorkloads.Mixed, AllocWorkloads.KmemBatch,
            AllocWorkloads.Mimalloc, "<=", 1.0);
        r.ExtraValue("compute (registers only, the machine's reference): 2 threads >= 1.8x one thread", ScalingWorkload,
            AllocWorkloads.Compute, ">=", 1.8);
        r.ExtraValue("mimalloc (the allocator reference): 2 threads >= 1.8x one thread", ScalingWorkload,
            AllocWorkloads.Mimalloc, ">=", 1.8);
        r.TargetRatio("mixed, tracking on <= 1.3x tracking off", AllocWorkloads.Mixed, KmemTracking, Kmem, "<=", 1.3);
        r.TargetRatio("64 B tight pair, tracking on <= 1.3x tracking off", AllocWorkloads.Tight, KmemTracking, Kmem, "<=", 1.3);
        r.TargetValue("2 threads >= 1.8x one thread", ScalingWorkload, Kmem, ">=", 1.8);
        r.TargetRatio("producer/consumer >= 1.0x glibc (time <= 1.0x)", AllocWorkloads.ProducerConsumer, Kmem,
            AllocWorkloads.NativeMemoryName, "<=", 1.0);
        r.TargetRatio("producer/consumer <= 1.2x mimalloc", AllocWorkloads.ProducerConsumer, Kmem, AllocWorkloads.Mimalloc,
            "<=", 1.2);
        r.TargetRatio("leakbench 1M full scan <= 0.33x LSan", "leakbench-1m", Kmem, "lsan", "<=", 0.33);
        if (full)
        {
            r.TargetRatio("leakbench 4M full scan <= 0.33x LSan", "leakbench-4m", Kmem, "lsan", "<=", 0.33);
        }

        r.TargetRatio("pointer-sparse root scan >= 60% of read bandwidth", RootScanWorkload.SparseWorkload, Kmem,
            "bandwidth", ">=", 0.60);
        r.TargetValue("metadata per 64 B object <= 16 B (tracking on)", MemoryWorkloads.MetadataWorkload, KmemTracking,
            "<=", 16);
        r.TargetRatio("RSS of 1M live 64 B objects <= 1.1x mimalloc (tracking on)", MemoryWorkloads.RssWorkload,
            KmemTracking, AllocWorkloads.Mimalloc, "<=", 1.1);
        r.TargetValue("statistics snapshot of 1000 types < 1 ms", MemoryWorkloads.StatsWorkload, Kmem, "<", 1.0);
    }

    // ---- the allocation workloads ------------------------------------------------------------------------------------

    private const string ScalingWorkload = "threads2-scaling";

    /// <summary>One (workload, subject): its warm-up and one timed repetition (ns per operation, null on failure).</summary>
    private sealed record Cell(string Workload, string Subject, Action WarmUp, Func<double?> TimeOnce)
    {
        public List<double> Samples { get; } = [];
    }

    private static void AllocationWorkloads(Results results, int repetitions, int pairs)
    {
        string[] peers = [AllocWorkloads.NativeMemoryName, AllocWorkloads.Mimalloc, AllocWorkloads.Jemalloc];
        if (!NativePeers.HasMimalloc)
        {
            Note(results, $"mimalloc skipped: {NativePeers.MimallocNote}");
        }

        if (!NativePeers.HasJemalloc)
        {
            Note(results, $"jemalloc skipped: {NativePeers.JemallocNote}");
        }

        if (!Kmemleak.IsEnabled)
        {
            Note(results, "kmem-tracking skipped: leak tracking is off in this process (KMEMLEAK=off?)");
        }

        KmemChild? child = KmemChild.Start(out string? failure);
        if (child is null)
        {
            Note(results, $"kmem (tracking off) skipped: the KMEMLEAK=off child failed: {failure}");
        }

        try
        {
            string pairUnit = "ns per malloc+free pair of 64 B";
            Describe(results, AllocWorkloads.Tight, $"{pairUnit}: `p = malloc(64); *p = i; free(p)`");
            Describe(results, AllocWorkloads.Batch, $"{pairUnit}: 1000 mallocs (a byte written into each), then the"
                + " 1000 frees in the same order");
            Describe(results, AllocWorkloads.Mixed, $"ns per operation (one malloc+free pair): a window of"
                + $" {MixedSequence.Window} live blocks, each step frees a random slot and allocates 16 B-4 KiB (skewed to"
                + " small) into it, first and last byte written; the same seeded sequence for every subject");
            Describe(results, ScalingWorkload, "speed-up (x) of 2 threads over 1, each thread running `mixed` on its own"
                + " blocks (fixed operations per thread): 2 × time(1 thread) / time(2 threads), per repetition; the"
                + " -1thread/-2threads rows are ns per operation per thread; mimalloc for reference, and compute (a loop on"
                + " registers only, no memory): what two vCPUs of this machine give at best");
            Describe(results, AllocWorkloads.ProducerConsumer, "ns per pair: thread P allocates 64 B blocks (a byte"
                + " written) and passes them through a 256-slot lock-free single-producer/single-consumer ring to thread"
                + " C, which frees them");

            foreach (string workload in new[] { AllocWorkloads.Tight, AllocWorkloads.Batch, AllocWorkloads.Mixed })
            {
                MeasureWorkload(results, workload, [Kmem, AllocWorkloads.KmemBatch, KmemTracking, .. peers], child, repetitions,
                    pairs, "ns");
            }

            MeasureScaling(results, child, repetitions, pairs);
            MeasureWorkload(results, AllocWorkloads.ProducerConsumer,
                [Kmem, AllocWorkloads.NativeMemoryName, AllocWorkloads.Mimalloc], child, repetitions, pairs, "ns");
            if (child?.Failure is { } late)
            {
                Note(results, $"the KMEMLEAK=off child stopped answering: {late}; kmem rows may be missing");
            }
        }
        finally
        {
            child?.Dispose();
        }
    }

    private static void Describe(Results results, string workload, string description) =>
        results.Describe(workload, description);

    private static void Note(Results results, string note)
    {
        Console.WriteLine($"note:    {note}");
        results.Notes.Add(note);
    }

    /// <summary>The cell of <paramref name="subject"/> on <paramref name="workload"/>, or null when it cannot run:
    /// kmem through the child, kmem-tracking with Kmem's loop here, the peers here.</summary>
    private static Cell? MakeCell(string workload, string subject, KmemChild? child, int ops)
    {
        if (subject is Kmem or AllocWorkloads.KmemBatch)
        {
            return child is null
                ? null
                : new Cell(workload, subject, () => child.Warm(workload, ops, subject), () => child.Run(workload, ops, subject));
        }

        if (subject == KmemTracking && !Kmemleak.IsEnabled)
        {
            return null;
        }

        string allocator = subject == KmemTracking ? Kmem : subject;
        return AllocWorkloads.Loop(workload, allocator) is { } loop
            ? new Cell(workload, subject, () => Timing.WarmUp(loop, ops), () => Timing.TimeOnce(loop, ops))
            : null;
    }

    /// <summary>
    /// Warms every cell of a workload, then times each once per repetition, rotating their order every repetition so
    /// slow drift (frequency, noisy neighbours) spreads over all subjects; the child's cell takes its turn like the
    /// others, so its repetitions alternate with the parent's.
    /// </summary>
    private static List<Cell> MeasureCells(List<Cell> cells, int repetitions)
    {
        foreach (Cell cell in cells)
        {
            cell.WarmUp();
        }

        for (int rep = 0; rep < repetitions; rep++)
        {
            for (int k = 0; k < cells.Count; k++)
            {
                Cell cell = cells[(k + rep) % cells.Count];
                if (cell.TimeOnce() is { } ns)
                {
                    cell.Samples.Add(ns);
                }
            }
        }

        return cells;
    }

    private static void MeasureWorkload(Results results, string workload, string[] subjects, KmemChild? child,
        int repetitions, int pairs, string unit)
    {
        int ops = AllocWorkloads.OpsFor(workload, pairs);
        Console.WriteLine();
        Console.WriteLine($"{workload}: {ops:N0} operations x {repetitions} repetitions");
        List<Cell> cells = subjects.Select(s => MakeCell(workload, s, child, ops)).OfType<Cell>().ToList();
        foreach (Cell cell in MeasureCells(cells, repetitions))
        {
            Print(cell.Subject, cell.Samples, "ns/op");
            results.Add(workload, cell.Subject, cell.Samples, unit);
        }
    }

    /// <summary>threads2-scaling: the one- and two-thread loops as cells of one rotation; the speed-up per repetition.</summary>
    private static void MeasureScaling(Results results, KmemChild? child, int repetitions, int pairs)
    {
        int ops = AllocWorkloads.OpsFor(AllocWorkloads.OneThread, pairs);
        Console.WriteLine();
        Console.WriteLine($"{ScalingWorkload}: mixed on 1 and on 2 threads, {ops:N0} operations per thread x {repetitions}"
            + " repetitions");
        // mimalloc as well: a peer's speed-up shows what the machine allows for this work (two busy vCPUs give less than
        // 2); compute (no memory at all) what it allows for any work.
        foreach (string subject in new[] { Kmem, KmemTracking, AllocWorkloads.Mimalloc, AllocWorkloads.Compute })
        {
            Cell? one = MakeCell(AllocWorkloads.OneThread, subject, child, ops);
            Cell? two = MakeCell(AllocWorkloads.TwoThreads, subject, child, ops);
            if (one is null || two is null)
            {
                continue;
            }

            MeasureCells([one, two], repetitions);
            int n = Math.Min(one.Samples.Count, two.Samples.Count);
            double[] speedUps = [.. Enumerable.Range(0, n).Select(i => 2 * one.Samples[i] / two.Samples[i])];
            Print($"{subject}-1thread", one.Samples, "ns/op");
            Print($"{subject}-2threads", two.Samples, "ns/op per thread");
            Print(subject, speedUps, "x");
            results.Add(ScalingWorkload, subject, speedUps, "x");
            results.Add(ScalingWorkload, $"{subject}-1thread", one.Samples, "ns");
            results.Add(ScalingWorkload, $"{subject}-2threads", two.Samples, "ns");
        }
    }

    private static void Print(string subject, List<double> samples, string unit)
    {
        if (samples.Count == 0)
        {
            Console.WriteLine($"  {subject,-24} no figures");
            return;
        }

        Console.WriteLine($"  {subject,-24} {Timing.Median(samples),8:F2} {unit}  ({samples.Min():F2}-{samples.Max():F2})");
    }

    private static void Print(string subject, double[] samples, string unit) => Print(subject, samples.ToList(), unit);

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

        if (ChildProcess.SelfStartInfo() is not { } start)
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
}

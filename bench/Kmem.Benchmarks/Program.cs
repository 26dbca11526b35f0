// Program.cs — entry point: dispatches the "quick", "full", "scan", "diagnostic" and "bdn" modes and the hidden child
// modes, parses their options, and prints usage (exit code 2) for anything else.
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Filters;
using BenchmarkDotNet.Running;
using Kmem.Benchmarks.Micro;
using Kmem.Benchmarks.Peers;
using Kmem.Benchmarks.Quick;

namespace Kmem.Benchmarks;

/// <summary>Command-line entry point of the benchmark program.</summary>
internal static class Program
{
    private const string Usage = """
        Kmem benchmarks

        usage:
          Kmem.Benchmarks quick [--json FILE] [--docs FILE] [--reps N] [--pairs N]
              The hand-written harness, about a minute: every workload but leakbench-4m and valgrind.
                pair64-tight, pair64-batch1000, mixed   ns per malloc+free pair; subjects kmem (leak tracking off: a
                                                        KMEMLEAK=off child), kmem-tracking (on: this process),
                                                        nativememory, mimalloc, jemalloc
                threads2-scaling     speed-up of 2 threads over 1 on mixed (kmem, kmem-tracking; mimalloc for reference)
                producer-consumer    64-byte blocks freed on another thread (kmem, nativememory, mimalloc)
                sparse-scan          process roots over 1 GiB of pointer-free memory vs read bandwidth (GB/s)
                idle-scan            one scan of a small idle process (extra)
                leakbench-1m         leak scan of the 1M-object leakbench heap in a fresh child vs LeakSanitizer
                rss-1m, metadata-per-object   RSS growth of 2^20 live 64-byte blocks in fresh children
                stats-1000-types     Heap.TypeStats() (and FormatVmstat) with 1000 types
              Peers that cannot be loaded or built are skipped with a note. Prints a table per workload and the
              targets; exits with 1 if leakbench's leak counts are wrong.
              --json FILE  writes {machine, runs, ratios} to FILE
              --docs FILE  rewrites FILE's section between <!-- bench:generated:begin --> and <!-- bench:generated:end -->
              --reps N     timed repetitions per workload and subject (quick 5, full 11)
              --pairs N    64-byte pairs per repetition (quick 2000000, full 4000000); mixed and threads2-scaling
                           use a quarter, producer-consumer an eighth
          Kmem.Benchmarks full [--json FILE] [--docs FILE] [--reps N] [--pairs N]
              Everything quick runs plus leakbench-4m and valgrind on both leakbench heaps, more repetitions and
              three RSS children per subject; several minutes.
          Kmem.Benchmarks scan [--json FILE]
              The leak-scan workloads alone: sparse-scan, idle-scan and leakbench-1m (kmem, lsan).
          Kmem.Benchmarks diagnostic [--json FILE] [--reps N] [--pairs N]
              What DIAGNOSTIC mode costs: diag-pair64 (64-byte pairs) and diag-mixed (a 512-block window of
              16 to 4096-byte blocks) with the mode off and on, repetitions alternating in one process.
          Kmem.Benchmarks bdn [BenchmarkDotNet arguments]
              BenchmarkDotNet micro-benchmarks: PairBenchmarks (tight 64-byte pairs) and ShapeBenchmarks
              (pair64-batch1000 and mixed per allocator; kmem with tracking on), e.g. bdn --filter '*'
          Kmem.Benchmarks help
              This text.

        from the repository root: dotnet run -c Release --project bench/Kmem.Benchmarks -- quick
        """;

    public static int Main(string[] args)
    {
        switch (args)
        {
            case [("quick" or "full") and var mode, .. var rest]:
                return TryParseOptions(rest, allowDocs: true, out QuickOptions? options, out string? error)
                    ? QuickRunner.Run(options, full: mode == "full", args)
                    : UsageError(error);
            case ["scan", .. var rest]:
                return TryParseOptions(rest, allowDocs: false, out QuickOptions? scanOptions, out string? scanError)
                    ? QuickRunner.RunScans(scanOptions, args)
                    : UsageError(scanError);
            case ["diagnostic", .. var rest]:
                return TryParseOptions(rest, allowDocs: false, out QuickOptions? diagOptions, out string? diagError)
                    ? QuickRunner.RunDiagnostic(diagOptions)
                    : UsageError(diagError);
            // hidden child modes, started by the modes above
            case [RootScanWorkload.ChildMode]:
                return RootScanWorkload.RunChild(); // the small idle process of idle-scan
            case [KmemChild.ChildMode, .. var rest]:
                return KmemChild.RunChild(rest); // the KMEMLEAK=off side of the allocation workloads
            case [LeakbenchWorkload.ChildMode, var objects]:
                return LeakbenchWorkload.RunChild(objects, null); // Kmem's leakbench heap, alone in its process
            case [LeakbenchWorkload.ChildMode, var objects, var scans]:
                return LeakbenchWorkload.RunChild(objects, scans); // the same with more scans (bench/scripts/ab_scan.py)
            case [MemoryWorkloads.RssChildMode, var allocator]:
                return MemoryWorkloads.RunRssChild(allocator); // rss-1m and metadata-per-object
            case [MemoryWorkloads.StatsChildMode]:
                return MemoryWorkloads.RunStatsChild(); // stats-1000-types
            case ["bdn", .. var rest]:
                return RunBenchmarkDotNet(rest);
            case ["help" or "-h" or "--help" or "-?"]:
                Console.WriteLine(Usage);
                return 0;
            case []:
                return UsageError("no mode given");
            default:
                return UsageError($"unknown mode '{args[0]}'");
        }
    }

    private static int UsageError(string message)
    {
        Console.Error.WriteLine($"error: {message}");
        Console.Error.WriteLine();
        Console.Error.WriteLine(Usage);
        return 2;
    }

    private static bool TryParseOptions(string[] args, bool allowDocs, [NotNullWhen(true)] out QuickOptions? options,
        [NotNullWhen(false)] out string? error)
    {
        options = new QuickOptions(JsonPath: null);
        error = null;
        for (int i = 0; i < args.Length; i++)
        {
            string name = args[i];
            if (name is not ("--json" or "--reps" or "--pairs") && !(allowDocs && name == "--docs"))
            {
                error = $"unknown option '{name}'";
                break;
            }

            if (i + 1 >= args.Length)
            {
                error = $"{name} needs a value";
                break;
            }

            string value = args[++i];
            if (name is "--json" or "--docs")
            {
                options = name == "--json" ? options with { JsonPath = value } : options with { DocsPath = value };
                continue;
            }

            if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int number) || number <= 0)
            {
                error = $"{name} needs a positive whole number, not '{value}'";
                break;
            }

            if (name == "--pairs" && number < 4000)
            {
                error = "--pairs must be at least 4000";
                break;
            }

            options = name == "--reps"
                ? options with { Repetitions = number }
                : options with { PairsPerRepetition = number };
        }

        if (error is not null)
        {
            options = null;
            return false;
        }

        return true;
    }

    private static int RunBenchmarkDotNet(string[] args)
    {
        IConfig config = DefaultConfig.Instance;
        if (!NativePeers.HasMimalloc)
        {
            Console.WriteLine($"note: MimallocPair skipped: {NativePeers.MimallocNote}");
            config = config.AddFilter(new NameFilter(name => name != nameof(PairBenchmarks.MimallocPair)));
        }

        BenchmarkSwitcher.FromTypes([typeof(PairBenchmarks), typeof(ShapeBenchmarks)]).Run(args, config);
        return 0;
    }
}

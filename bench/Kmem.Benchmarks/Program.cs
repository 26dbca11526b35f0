// Program.cs — entry point: dispatches the "quick", "scan" and "bdn" modes and prints usage (exit code 2) for anything else.
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
          Kmem.Benchmarks quick [--json FILE] [--reps N] [--pairs N]
              Stopwatch benchmark of 64-byte Malloc+Free pairs (pair64-tight, pair64-batch1000) for kmem,
              nativememory, mimalloc and jemalloc (peers that cannot be loaded are skipped with a note);
              then pair64-tight-tracking (leak tracking on here vs off in a KMEMLEAK=off child) and, last,
              leakbench-1m (three leak scans of 1M objects beside LeakSanitizer's checks of the same graph,
              when clang-14 and libclang-rt-14-dev are installed). Exits with 1 if leakbench's leak counts
              are wrong. Prints medians and kmem/peer ratios; --json writes them to FILE.
              --reps N    timed repetitions per workload and subject (default 7)
              --pairs N   pairs per repetition, a multiple of 1000 (default 4000000)
          Kmem.Benchmarks scan [--json FILE]
              The leak-scan workloads alone: scan-sparse-1g (process roots over 1 GiB of pointer-free memory
              against a plain vector read loop), idle-scan (a small idle process) and leakbench-1m.
          Kmem.Benchmarks diagnostic [--json FILE] [--reps N] [--pairs N]
              What DIAGNOSTIC mode costs: diag-pair64 (64-byte pairs) and diag-mixed (a 512-block window of
              16 to 4096-byte blocks) with the mode off and on, repetitions alternating in one process.
          Kmem.Benchmarks bdn [BenchmarkDotNet arguments]
              BenchmarkDotNet micro-benchmarks (PairBenchmarks), e.g. bdn --filter '*'
          Kmem.Benchmarks help
              This text.

        from the repository root: dotnet run -c Release --project bench/Kmem.Benchmarks -- quick
        """;

    public static int Main(string[] args)
    {
        switch (args)
        {
            case ["quick", .. var rest]:
                return TryParseQuick(rest, out QuickOptions? options, out string? error)
                    ? QuickRunner.Run(options, args)
                    : UsageError(error);
            case ["scan", .. var rest]:
                return TryParseQuick(rest, out QuickOptions? scanOptions, out string? scanError)
                    ? QuickRunner.RunScans(scanOptions)
                    : UsageError(scanError);
            case ["diagnostic", .. var rest]:
                return TryParseQuick(rest, out QuickOptions? diagOptions, out string? diagError)
                    ? QuickRunner.RunDiagnostic(diagOptions)
                    : UsageError(diagError);
            case [RootScanWorkload.ChildMode]:
                return RootScanWorkload.RunChild(); // hidden: the small idle process of idle-scan
            case [TrackingWorkload.ChildMode, var pairs]:
                return TrackingWorkload.RunChild(pairs); // hidden: the KMEMLEAK=off side of pair64-tight-tracking
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

    private static bool TryParseQuick(string[] args, [NotNullWhen(true)] out QuickOptions? options,
        [NotNullWhen(false)] out string? error)
    {
        options = new QuickOptions(JsonPath: null);
        error = null;
        for (int i = 0; i < args.Length; i++)
        {
            string name = args[i];
            if (name is not ("--json" or "--reps" or "--pairs"))
            {
                error = $"unknown quick option '{name}'";
                break;
            }

            if (i + 1 >= args.Length)
            {
                error = $"{name} needs a value";
                break;
            }

            string value = args[++i];
            if (name == "--json")
            {
                options = options with { JsonPath = value };
                continue;
            }

            if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int number) || number <= 0)
            {
                error = $"{name} needs a positive whole number, not '{value}'";
                break;
            }

            if (name == "--pairs" && number < 1000)
            {
                error = "--pairs must be at least 1000";
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

        BenchmarkSwitcher.FromTypes([typeof(PairBenchmarks)]).Run(args, config);
        return 0;
    }
}

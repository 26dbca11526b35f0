// StressCommand.cs — `dotnet-kmem stress`: runs the stress engine (Stress/StressEngine.cs) in this process and prints
// what it did and found; exits 1 when anything was wrong (corruption, a false leak report, a Verify problem, a
// statistic that is not back to zero).
using System.CommandLine;
using Kmem.Tool.Attach;
using Kmem.Tool.Stress;

namespace Kmem.Tool;

internal static class StressCommand
{
    public static Command Create()
    {
        var seconds = new Option<double>("--seconds") { Description = "How long to run.", DefaultValueFactory = _ => 20 };
        var threads = new Option<int>("--threads") { Description = "Worker threads (a leak-scanning thread runs beside them).", DefaultValueFactory = _ => Math.Max(2, Environment.ProcessorCount) };
        var seed = new Option<int>("--seed") { Description = "Seed of the workers' random choices (thread interleaving is not reproducible).", DefaultValueFactory = _ => 1 };
        var failNoWait = new Option<int>("--fail-nowait") { Description = "Fail every N-th NoWait malloc (KmemOptions.FailNoWaitEvery); 0 = off.", DefaultValueFactory = _ => 0 };
        var failPages = new Option<int>("--fail-pages") { Description = "Refuse every N-th page request (KmemOptions.FailPageRequestsEvery); 0 = off.", DefaultValueFactory = _ => 0 };
        var ops = new Option<long>("--ops") { Description = "Stop after about this many operations (0 = run for --seconds).", DefaultValueFactory = _ => 0 };
        var command = new Command("stress", "Stress Kmem in this process: random malloc/realloc/free across threads, per-CPU and vmalloc memory, limits, DIAGNOSTIC toggles and leak scans; then Heap.Verify and the statistics must be clean.")
        {
            seconds, threads, seed, failNoWait, failPages, ops,
        };
        command.SetAction(r => ToolCommon.Guard(() => Run(new StressOptions(r.GetValue(seconds), r.GetValue(threads), r.GetValue(seed),
            r.GetValue(failNoWait), r.GetValue(failPages), r.GetValue(ops)))));
        return command;
    }

    private static int Run(StressOptions o)
    {
        if (o.Threads < 1 || o.Seconds <= 0 || o.FailNoWait < 0 || o.FailPages < 0 || o.MaxOps < 0)
            throw new ToolException("--threads must be at least 1, --seconds positive, --fail-nowait, --fail-pages and --ops not negative");
        Console.WriteLine($"stress: {o.Threads} threads, seed {o.Seed}, {o.Seconds} s{(o.MaxOps > 0 ? $" or {o.MaxOps:N0} operations" : "")}"
            + $", fail-nowait {o.FailNoWait}, fail-pages {o.FailPages}");
        StressReport r = StressEngine.RunStress(o, line => Console.WriteLine(line));
        Console.WriteLine($"operations: {r.TotalOps:N0} in {r.Elapsed.TotalSeconds:F1} s ({r.TotalOps / Math.Max(0.001, r.Elapsed.TotalSeconds):N0}/s) on {o.Threads} threads, seed {o.Seed}");
        Console.WriteLine("  " + string.Join(", ", r.Ops.Where(kv => kv.Value > 0).Select(kv => $"{kv.Key} {kv.Value:N0}")));
        Console.WriteLine($"leak scans: {r.Scans:N0}, objects reported: {r.LeakReportsSeen:N0}, false leak reports (reachable objects): {r.FalseLeakReports}");
        Console.WriteLine($"corruptions found: {r.Corruptions}");
        Console.WriteLine($"injected failures survived: {r.InjectedNoWait:N0} NoWait, {r.InjectedPages:N0} page requests ({r.NoWaitNulls:N0} null returns handled)");
        Console.WriteLine($"Heap.Verify: {r.VerifyRuns} runs, {r.VerifyProblems} problem(s)");
        foreach (string p in r.Problems)
            Console.WriteLine("problem: " + p);
        Console.WriteLine(r.Problems.Count == 0 ? "stress: PASS" : $"stress: FAIL ({r.Problems.Count} problem(s) listed)");
        return r.Problems.Count == 0 ? 0 : 1;
    }
}

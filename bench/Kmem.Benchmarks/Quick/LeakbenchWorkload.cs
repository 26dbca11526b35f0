// Quick/LeakbenchWorkload.cs — the "leakbench-1m" workload: Kmemleak's scan of the leakbench heap (1M 64-byte
// objects, 90% one binary tree, 10% leaked as 10-node subtrees; shared/peers/leakbench.c) built with Kmem in this
// process, beside LeakSanitizer's check of the same graph (leakbench.c built with clang -fsanitize=leak), same run.
using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kmem.Benchmarks.Report;

namespace Kmem.Benchmarks.Quick;

/// <summary>The rows of the leakbench workload and whether Kmem's leak counts were the expected ones.</summary>
internal sealed record LeakbenchOutcome(List<BenchRun> Runs, bool CountsOk);

/// <summary>
/// Builds leakbench's graph with <c>Heap.Malloc(64, "leakbench")</c>, roots the tree in an 8-byte foreign block
/// registered with <c>Kmemleak.Alloc(root, 8, 0)</c>, and times three <c>Kmemleak.Scan()</c> calls with
/// <c>minage=0</c> and the default settings otherwise (process roots on, a forced GC first): the first primes the
/// checksums (nothing can be reported on a block's first white scan), the second reports the 100,000 leaks, the third
/// is the steady state (reported as ns per object, whole and by part). The blocks are never freed, so this runs last.
/// Then leakbench.c is built with LeakSanitizer and its third check is timed.
/// </summary>
internal static unsafe class LeakbenchWorkload
{
    public const string Workload = "leakbench-1m";

    private const int Objects = 1_000_000;
    private const int SubtreeSize = 10;
    private const int Scans = 3;
    private const int ExpectedLeaks = Objects / 10 / SubtreeSize * SubtreeSize;   // 100,000 (leakbench.c, 10%)
    private const int ExpectedDirect = ExpectedLeaks / SubtreeSize;               // 10,000 subtree roots
    private const int Reachable = Objects - ExpectedLeaks;                        // 900,000 in the tree
    private const string TypeName = "leakbench";
    private const string LsanPackages = "clang-14 libclang-rt-14-dev";
    private static readonly TimeSpan s_toolTimeout = TimeSpan.FromMinutes(2);

    /// <summary>Allocations so far; leakbench.c's payload is <c>(g_allocs &amp; 0xffff) + i</c>.</summary>
    private static long s_allocs;

    /// <summary>leakbench.c's node: two child pointers and 48 bytes of small integers.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Node
    {
        public Node* Left;
        public Node* Right;
        public fixed ulong Payload[6];
    }

    /// <summary>Runs Kmem's side, then LSan's; prints every scan and check, the counts and the ratio.</summary>
    public static LeakbenchOutcome Run()
    {
        Console.WriteLine();
        Console.WriteLine($"{Workload}: leak scans of the leakbench heap ({Objects:N0} objects of 64 B; {Reachable:N0} in one"
            + $" binary tree, {ExpectedLeaks:N0} leaked as {ExpectedDirect:N0} subtrees of {SubtreeSize}); ns per object");
        var runs = new List<BenchRun>();
        if (!Kmemleak.IsEnabled)
        {
            Console.WriteLine("note:    kmem skipped: leak tracking is off in this process (KMEMLEAK=off?)");
            return new LeakbenchOutcome(runs, CountsOk: true);
        }

        (double kmem, LeakScanStats parts, bool countsOk) = KmemScans();
        runs.Add(new BenchRun(Workload, "kmem", Math.Round(kmem, 1), "ns"));
        runs.Add(new BenchRun(Workload, "kmem-gc", PerObject(parts.GcTime), "ns"));
        runs.Add(new BenchRun(Workload, "kmem-process-roots", PerObject(parts.ProcessRootTime), "ns"));
        runs.Add(new BenchRun(Workload, "kmem-marking", PerObject(parts.MarkTime - parts.ProcessRootTime), "ns"));
        runs.Add(new BenchRun(Workload, "kmem-classification", PerObject(parts.ClassifyTime), "ns"));
        if (LsanChecks() is { } lsan)
        {
            runs.Add(new BenchRun(Workload, "lsan", Math.Round(lsan, 1), "ns"));
            Console.WriteLine($"ratio kmem/lsan (3rd scan / 3rd check, ns per object) {kmem / lsan:F2}");
        }

        return new LeakbenchOutcome(runs, countsOk);
    }

    // ---- Kmem -----------------------------------------------------------------------------------------------------

    private static double PerObject(TimeSpan t) => Math.Round(t.TotalSeconds * 1e9 / Objects, 1);

    /// <summary>Builds the heap, scans three times; returns ns per object of the third scan, its parts, and whether counts
    /// matched.</summary>
    private static (double SteadyNs, LeakScanStats Parts, bool CountsOk) KmemScans()
    {
        if (sizeof(Node) != 64)
        {
            throw new InvalidOperationException($"leakbench node must be 64 bytes, not {sizeof(Node)}");
        }

        var type = new MallocType(TypeName, "leakbench heap nodes (quick benchmark)");
        Node** root = (Node**)NativeMemory.AllocZeroed((nuint)sizeof(Node*));
        Kmemleak.Alloc(root, (nuint)sizeof(Node*), 0); // min_count 0: a root, scanned and never reported

        long start = Stopwatch.GetTimestamp();
        *root = BuildHeap(type);
        Console.WriteLine($"kmem:    alloc phase {Stopwatch.GetElapsedTime(start).TotalSeconds:F3} s ({s_allocs:N0} blocks)");

        Kmemleak.Write("minage=0");
        bool countsOk = true;
        double steady = 0;
        LeakScanStats parts = null!;
        for (int scan = 1; scan <= Scans; scan++)
        {
            start = Stopwatch.GetTimestamp();
            LeakScanResult result = Kmemleak.Scan();
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            double ns = seconds * 1e9 / Objects;

            int leaks = result.Leaks.Count;
            int direct = result.Leaks.Count(l => l.Direct);
            int ours = result.Leaks.Count(l => l.Type == TypeName);
            (int wantLeaks, int wantDirect) = scan == 1 ? (0, 0) : (ExpectedLeaks, ExpectedDirect);
            bool ok = leaks == wantLeaks && direct == wantDirect && ours == leaks;
            countsOk &= ok;
            string verdict = ok ? "as expected" : $"EXPECTED {wantLeaks:N0} ({wantDirect:N0} direct) of type {TypeName}";
            Console.WriteLine($"kmem:    scan {scan} {seconds:F3} s = {ns,4:F0} ns/object"
                + $" (scanner {result.Stats.Duration.TotalSeconds:F3} s, {result.Stats.Objects:N0} objects);"
                + $" leaks {leaks:N0} ({direct:N0} direct, {leaks - direct:N0} indirect, {result.NewLeaks.Count:N0} new) {verdict}");
            LeakScanStats s = result.Stats;
            Console.WriteLine($"         parts: GC {s.GcTime.TotalMilliseconds:F1} ms, process roots {s.ProcessRootTime.TotalMilliseconds:F1} ms"
                + $" ({s.ProcessRootBytes / 1e6:F0} MB, {s.ProcessRootRanges} ranges), marking {(s.MarkTime - s.ProcessRootTime).TotalMilliseconds:F1} ms,"
                + $" classification {s.ClassifyTime.TotalMilliseconds:F1} ms; {s.Passes} marking pass(es)");
            steady = ns;
            parts = s;
        }

        if (!countsOk)
        {
            Console.WriteLine("error:   kmem's leak counts differ from leakbench's; the quick run will exit with code 1");
        }

        return (steady, parts, countsOk);
    }

    /// <summary>
    /// build_reachable of leakbench.c: the tree's nodes through a temporary index (not Kmem memory, so never scanned),
    /// one leaked subtree after every 90 of them, then the links; the index is zeroed and freed. Returns the tree's root.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Node* BuildHeap(MallocType type)
    {
        Node** index = (Node**)NativeMemory.Alloc((nuint)Reachable, (nuint)sizeof(Node*));
        int budget = ExpectedLeaks / SubtreeSize;
        int leakEvery = Reachable / budget;
        int since = 0;
        for (int i = 0; i < Reachable; i++)
        {
            index[i] = NewNode(type);
            if (budget > 0 && ++since >= leakEvery)
            {
                since = 0;
                budget--;
                LeakOneSubtree(type);
            }
        }

        while (budget-- > 0)
        {
            LeakOneSubtree(type);
        }

        for (int i = 0; i < Reachable; i++)
        {
            index[i]->Left = 2 * i + 1 < Reachable ? index[2 * i + 1] : null;
            index[i]->Right = 2 * i + 2 < Reachable ? index[2 * i + 2] : null;
        }

        Node* treeRoot = index[0];
        NativeMemory.Clear(index, (nuint)Reachable * (nuint)sizeof(Node*)); // no stale copies of the pointers
        NativeMemory.Free(index);
        return treeRoot;
    }

    /// <summary>leak_one_subtree: ten nodes linked as a small complete binary tree, then every pointer to them dropped.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void LeakOneSubtree(MallocType type)
    {
        Node** nodes = stackalloc Node*[SubtreeSize];
        for (int k = 0; k < SubtreeSize; k++)
        {
            nodes[k] = NewNode(type);
        }

        for (int k = 0; k < SubtreeSize; k++)
        {
            nodes[k]->Left = 2 * k + 1 < SubtreeSize ? nodes[2 * k + 1] : null;
            nodes[k]->Right = 2 * k + 2 < SubtreeSize ? nodes[2 * k + 2] : null;
        }

        new Span<nint>(nodes, SubtreeSize).Clear();
    }

    /// <summary>mk: a 64-byte node with no children and small-integer payload.</summary>
    private static Node* NewNode(MallocType type)
    {
        Node* n = (Node*)Heap.Malloc(64, type);
        n->Left = null;
        n->Right = null;
        ulong salt = (ulong)(s_allocs & 0xffff);
        for (int i = 0; i < 6; i++)
        {
            n->Payload[i] = salt + (ulong)i;
        }

        s_allocs++;
        return n;
    }

    // ---- LeakSanitizer ----------------------------------------------------------------------------------------------

    /// <summary>
    /// Builds leakbench.c with clang's LeakSanitizer into a temporary directory, runs
    /// <c>LSAN_OPTIONS=symbolize=0 leakbench_lsan 1000000 3</c> and returns the third check in ns per object; null,
    /// with a note, when clang, its LSan runtime or leakbench.c is missing or the run gives no timings.
    /// </summary>
    private static double? LsanChecks()
    {
        string? source = FindLeakbenchSource();
        string? clang = FindOnPath("clang-14") ?? FindOnPath("clang");
        if (source is null || clang is null)
        {
            Console.WriteLine("note:    lsan skipped: " + (source is null
                ? "shared/peers/leakbench.c not found above the program's or the current directory"
                : $"no clang-14 or clang on PATH (on Debian/Ubuntu: apt-get install -y {LsanPackages})"));
            return null;
        }

        DirectoryInfo temp = Directory.CreateTempSubdirectory("kmem-leakbench-");
        try
        {
            string exe = Path.Combine(temp.FullName, "leakbench_lsan");
            ToolRun build = RunTool(clang, ["-O2", "-g", "-fsanitize=leak", "-DUSE_LSAN", source, "-o", exe], lsanOptions: null);
            if (build.ExitCode != 0)
            {
                Console.WriteLine($"note:    lsan skipped: {Path.GetFileName(clang)} could not build leakbench.c"
                    + $" ({FirstLine(build.Error ?? build.ErrorOutput + build.Output)}); on Debian/Ubuntu: apt-get install -y {LsanPackages}");
                return null;
            }

            ToolRun run = RunTool(exe, [Objects.ToString(CultureInfo.InvariantCulture), Scans.ToString(CultureInfo.InvariantCulture)],
                lsanOptions: "symbolize=0");
            var checks = new double[Scans];
            int found = 0;
            foreach (string line in run.Output.Split('\n', StringSplitOptions.TrimEntries))
            {
                if (line.StartsWith("N=", StringComparison.Ordinal))
                {
                    Console.WriteLine($"lsan:    {line}");
                }

                // leak_check_<k>_s=<seconds> result=<r>
                if (TryParseCheck(line, out int k, out double seconds, out string result) && k >= 1 && k <= Scans)
                {
                    checks[k - 1] = seconds;
                    found |= 1 << (k - 1);
                    Console.WriteLine($"lsan:    check {k} {seconds:F3} s = {seconds * 1e9 / Objects,4:F0} ns/object (result={result})");
                }
            }

            // LSan writes one report per check to stderr; its SUMMARY line gives the count of leaked allocations.
            foreach (IGrouping<string, string> summary in run.ErrorOutput.Split('\n', StringSplitOptions.TrimEntries)
                         .Where(l => l.StartsWith("SUMMARY:", StringComparison.Ordinal)).GroupBy(l => l))
            {
                Console.WriteLine($"lsan:    {summary.Key} (in {summary.Count()} of {Scans} reports)");
            }

            if (found != (1 << Scans) - 1)
            {
                Console.WriteLine($"note:    lsan skipped: leakbench_lsan gave no timings for all {Scans} checks (exit code"
                    + $" {run.ExitCode}: {FirstLine(run.Error ?? run.ErrorOutput)})");
                return null;
            }

            return checks[Scans - 1] * 1e9 / Objects;
        }
        finally
        {
            try
            {
                temp.Delete(recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static bool TryParseCheck(string line, out int check, out double seconds, out string result)
    {
        check = 0;
        seconds = 0;
        result = "";
        const string prefix = "leak_check_";
        int marker = line.IndexOf("_s=", StringComparison.Ordinal);
        if (!line.StartsWith(prefix, StringComparison.Ordinal) || marker < 0)
        {
            return false;
        }

        string[] rest = line[(marker + 3)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        result = rest.FirstOrDefault(r => r.StartsWith("result=", StringComparison.Ordinal))?["result=".Length..] ?? "?";
        ReadOnlySpan<char> number = line.AsSpan(prefix.Length, marker - prefix.Length);
        return int.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out check)
            && rest.Length > 0
            && double.TryParse(rest[0], NumberStyles.Float, CultureInfo.InvariantCulture, out seconds);
    }

    /// <summary>What a tool run gave: exit code (−1 when it did not run to the end), stdout, stderr, or why it failed.</summary>
    private sealed record ToolRun(int ExitCode, string Output, string ErrorOutput, string? Error);

    private static ToolRun RunTool(string file, string[] args, string? lsanOptions)
    {
        var start = new ProcessStartInfo(file)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        if (lsanOptions is not null)
        {
            start.Environment["LSAN_OPTIONS"] = lsanOptions;
        }

        try
        {
            using Process process = Process.Start(start) ?? throw new InvalidOperationException("Process.Start returned null");
            Task<string> output = process.StandardOutput.ReadToEndAsync();
            Task<string> error = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(s_toolTimeout))
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
                string timedOut = $"{Path.GetFileName(file)} timed out after {s_toolTimeout.TotalSeconds:F0} s";
                return new ToolRun(-1, output.Result, error.Result, timedOut);
            }

            process.WaitForExit(); // drains the redirected streams
            return new ToolRun(process.ExitCode, output.Result, error.Result, null);
        }
        catch (Exception e) when (e is Win32Exception or InvalidOperationException)
        {
            return new ToolRun(-1, "", "", $"{Path.GetFileName(file)} could not be started: {e.Message}");
        }
    }

    /// <summary>
    /// The first line of a tool's output that says "error" or "cannot" (such as the linker's line about a missing LSan
    /// runtime), else its first line.
    /// </summary>
    private static string FirstLine(string text)
    {
        string[] lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.FirstOrDefault(l => l.Contains("error", StringComparison.OrdinalIgnoreCase)
                || l.Contains("cannot", StringComparison.OrdinalIgnoreCase))
            ?? lines.FirstOrDefault()
            ?? "no output";
    }

    /// <summary>shared/peers/leakbench.c in the program's directory or the current one, or any directory above them.</summary>
    private static string? FindLeakbenchSource()
    {
        foreach (string from in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
        {
            for (DirectoryInfo? d = new(from); d is not null; d = d.Parent)
            {
                string candidate = Path.Combine(d.FullName, "shared", "peers", "leakbench.c");
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }
        }

        return null;
    }

    private static string? FindOnPath(string command) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, command))
            .FirstOrDefault(File.Exists);
}

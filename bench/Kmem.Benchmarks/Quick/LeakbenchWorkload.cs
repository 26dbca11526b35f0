// Quick/LeakbenchWorkload.cs — the "leakbench-1m" and "leakbench-4m" workloads: Kmemleak's scan of the leakbench heap
// (N 64-byte objects, 90% one binary tree, 10% leaked as 10-node subtrees; shared/peers/leakbench.c) built with Kmem in
// a fresh child process (the hidden mode quick-child-leakbench N), beside LeakSanitizer's and valgrind's checks of the
// same graph (leakbench.c built with clang -fsanitize=leak and with gcc -DUSE_VALGRIND), same run. Owns both the
// parent's side (child, peers, rows) and the child's (building the heap, three scans, the count checks).
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kmem.Benchmarks.Report;

namespace Kmem.Benchmarks.Quick;

/// <summary>
/// Kmem's side runs in its own child so each heap is alone in its process: a scan covers the whole process, and the
/// heap is never freed. The child builds leakbench's graph with <c>Heap.Malloc(64, "leakbench")</c>, roots the tree
/// in an 8-byte foreign block registered with <c>Kmemleak.Alloc(root, 8, 0)</c>, and times seven
/// <c>Kmemleak.Scan()</c> calls with <c>minage=0</c> and the default settings otherwise (process roots on, a forced GC
/// first): the first primes the checksums (nothing can be reported on a block's first white scan), the second reports
/// the leaks, the third to seventh are the steady state (the median one is reported as ns per object, whole and by
/// part). Its last line is
/// <c>result ns=… gc=… roots=… mark=… classify=… counts_ok=0|1</c>.
/// </summary>
internal static unsafe class LeakbenchWorkload
{
    public const string ChildMode = "quick-child-leakbench";

    private const int SubtreeSize = 10;
    // The figure of each side is the median of scans (checks) 3 to 7: the first two of Kmem's reach the steady state
    // (the second is the one that finds the leaks), and one scan of a fresh .NET child may share the two cores with the
    // runtime's background JIT, which five do not all do.
    private const int FirstMeasured = 3;
    private const int Scans = 7;
    private const string TypeName = "leakbench";
    private const string LsanPackages = "clang-14 libclang-rt-14-dev";
    private static readonly TimeSpan s_childTimeout = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan s_toolTimeout = TimeSpan.FromMinutes(10);

    /// <summary>The workload's name for <paramref name="objects"/>: leakbench-1m, leakbench-4m.</summary>
    public static string NameFor(int objects) => $"leakbench-{objects / 1_000_000}m";

    /// <summary>
    /// Runs Kmem's child, then LSan (and valgrind when <paramref name="withValgrind"/>) on
    /// <paramref name="objects"/> objects; adds the rows; returns false when Kmem's leak counts were wrong.
    /// </summary>
    public static bool Run(Results results, int objects, bool withValgrind, PeerTools tools)
    {
        string workload = NameFor(objects);
        (int leaks, int direct, int reachable) = Expected(objects);
        Console.WriteLine();
        Console.WriteLine($"{workload}: leak scans of the leakbench heap ({objects:N0} objects of 64 B; {reachable:N0} in one"
            + $" binary tree, {leaks:N0} leaked as {direct:N0} subtrees of {SubtreeSize}); ns per object");
        results.Describe(workload, $"ns per object for one whole leak scan of the leakbench heap ({objects:N0} objects of"
            + " 64 B, 10% leaked); kmem: median of `Kmemleak.Scan()` 3-7 in a fresh child (tracking on, process roots,"
            + " forced GC), parts (of that scan) as kmem-*; lsan: median of checks 3-7 (`symbolize=0`); valgrind: one"
            + " in-program check");

        bool countsOk = KmemSide(results, workload, objects);
        if (tools.Check(objects, PeerTools.Lsan, Scans) is { } lsan)
        {
            results.AddOne(workload, "lsan", lsan, "ns");
        }

        if (withValgrind && tools.Check(objects, PeerTools.Valgrind, 1) is { } vg)
        {
            results.AddOne(workload, "valgrind", vg, "ns");
        }

        return countsOk;
    }

    private static (int Leaks, int Direct, int Reachable) Expected(int objects)
    {
        int leaks = objects / 10 / SubtreeSize * SubtreeSize;
        return (leaks, leaks / SubtreeSize, objects - leaks);
    }

    private static bool KmemSide(Results results, string workload, int objects)
    {
        string? resultLine = null;
        ToolRun run = ChildProcess.RunSelf([ChildMode, objects.ToString(CultureInfo.InvariantCulture)], null,
            s_childTimeout, line =>
            {
                if (line.StartsWith("result ", StringComparison.Ordinal))
                {
                    resultLine = line;
                }
                else
                {
                    Console.WriteLine(line);
                }
            });
        if (resultLine is null)
        {
            string why = $"the leakbench child failed ({run.Error ?? $"exit code {run.ExitCode}"})";
            Console.WriteLine($"note:    kmem skipped: {why}");
            results.Notes.Add($"{workload} kmem: {why}");
            return run.ExitCode != 1; // exit code 1 is the child's count failure
        }

        Dictionary<string, double> fields = resultLine.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1)
            .Select(f => f.Split('='))
            .ToDictionary(f => f[0], f => double.Parse(f[1], CultureInfo.InvariantCulture));
        results.AddOne(workload, "kmem", fields["ns"], "ns");
        results.AddOne(workload, "kmem-gc", fields["gc"], "ns");
        results.AddOne(workload, "kmem-process-roots", fields["roots"], "ns");
        results.AddOne(workload, "kmem-marking", fields["mark"], "ns");
        results.AddOne(workload, "kmem-classification", fields["classify"], "ns");
        bool ok = fields["counts_ok"] == 1;
        if (!ok)
        {
            results.Notes.Add($"{workload}: Kmem's leak counts were wrong (the run exits with code 1)");
        }

        return ok;
    }

    // ---- the child: Kmem's heap and scans ---------------------------------------------------------------------------

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

    /// <summary>The child (<c>quick-child-leakbench N [SCANS]</c>): builds the heap, scans seven times (or SCANS ≥ 3
    /// times), prints the scans and the result line (the figures of the median scan from the third on). Exit code 1
    /// when the leak counts are wrong, 2 on bad arguments, 3 when tracking is off.</summary>
    public static int RunChild(string objectsText, string? scansText)
    {
        if (!int.TryParse(objectsText, NumberStyles.None, CultureInfo.InvariantCulture, out int objects)
            || objects < 1000)
        {
            Console.Error.WriteLine($"error: {ChildMode} needs a number of objects of at least 1000, not '{objectsText}'");
            return 2;
        }

        int scans = Scans;
        if (scansText is not null
            && (!int.TryParse(scansText, NumberStyles.None, CultureInfo.InvariantCulture, out scans) || scans < FirstMeasured))
        {
            Console.Error.WriteLine($"error: {ChildMode} needs a number of scans of at least {FirstMeasured}, not '{scansText}'");
            return 2;
        }

        if (!Kmemleak.IsEnabled)
        {
            Console.Error.WriteLine($"error: {ChildMode} needs leak tracking on (started with KMEMLEAK=off?)");
            return 3;
        }

        if (sizeof(Node) != 64)
        {
            throw new InvalidOperationException($"leakbench node must be 64 bytes, not {sizeof(Node)}");
        }

        (int expectedLeaks, int expectedDirect, int reachable) = Expected(objects);
        var type = new MallocType(TypeName, "leakbench heap nodes (benchmark)");
        Node** root = (Node**)NativeMemory.AllocZeroed((nuint)sizeof(Node*));
        Kmemleak.Alloc(root, (nuint)sizeof(Node*), 0); // min_count 0: a root, scanned and never reported

        long start = Stopwatch.GetTimestamp();
        *root = BuildHeap(type, reachable, expectedLeaks / SubtreeSize);
        Console.WriteLine($"kmem:    alloc phase {Stopwatch.GetElapsedTime(start).TotalSeconds:F3} s ({s_allocs:N0} blocks)");

        Kmemleak.Write("minage=0");
        bool countsOk = true;
        var steady = new List<(double Ns, LeakScanStats Parts)>();
        for (int scan = 1; scan <= scans; scan++)
        {
            start = Stopwatch.GetTimestamp();
            LeakScanResult result = Kmemleak.Scan();
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            double ns = seconds * 1e9 / objects;

            // Counted without making the reports: 100,000 report objects left for the next scan's forced GC cost it
            // 8-9 ms (12 instead of 3-4). The last scan's reports are made too, to check that they say the same.
            LeakTally tally = result.Tally(TypeName);
            (int leaks, int direct, int ours) = (tally.Count, tally.Direct, tally.OfType);
            if (scan == scans && (result.Leaks.Count != leaks || result.Leaks.Count(l => l.Direct) != direct
                || result.Leaks.Count(l => l.Type == TypeName) != ours || result.NewLeaks.Count != tally.New))
            {
                Console.WriteLine("error:   the reports of the last scan differ from its tally");
                leaks = -1;
            }
            (int wantLeaks, int wantDirect) = scan == 1 ? (0, 0) : (expectedLeaks, expectedDirect);
            bool ok = leaks == wantLeaks && direct == wantDirect && ours == leaks;
            countsOk &= ok;
            string verdict = ok ? "as expected" : $"EXPECTED {wantLeaks:N0} ({wantDirect:N0} direct) of type {TypeName}";
            Console.WriteLine($"kmem:    scan {scan} {seconds:F3} s = {ns,4:F0} ns/object"
                + $" (scanner {result.Stats.Duration.TotalSeconds:F3} s, {result.Stats.Objects:N0} objects);"
                + $" leaks {leaks:N0} ({direct:N0} direct, {leaks - direct:N0} indirect, {tally.New:N0} new) {verdict}");
            LeakScanStats s = result.Stats;
            Console.WriteLine($"         parts: GC {s.GcTime.TotalMilliseconds:F1} ms, process roots {s.ProcessRootTime.TotalMilliseconds:F1} ms"
                + $" ({s.ProcessRootBytes / 1e6:F0} MB, {s.ProcessRootRanges} ranges), marking {(s.MarkTime - s.ProcessRootTime).TotalMilliseconds:F1} ms,"
                + $" classification {s.ClassifyTime.TotalMilliseconds:F1} ms; {s.Passes} marking pass(es)");
            if (scan >= FirstMeasured)
            {
                steady.Add((ns, s));
            }
        }

        if (!countsOk)
        {
            Console.WriteLine("error:   kmem's leak counts differ from leakbench's; the run will exit with code 1");
        }

        double PerObject(TimeSpan t) => t.TotalSeconds * 1e9 / objects;
        steady.Sort((a, b) => a.Ns.CompareTo(b.Ns));
        (double median, LeakScanStats parts) = steady[steady.Count / 2];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"result ns={median:F1} gc={PerObject(parts.GcTime):F1} roots={PerObject(parts.ProcessRootTime):F1}"
            + $" mark={PerObject(parts.MarkTime - parts.ProcessRootTime):F1} classify={PerObject(parts.ClassifyTime):F1}"
            + $" counts_ok={(countsOk ? 1 : 0)}"));
        return countsOk ? 0 : 1;
    }

    /// <summary>
    /// build_reachable of leakbench.c: the tree's nodes through a temporary index (not Kmem memory, so never scanned),
    /// one leaked subtree after every so many of them, then the links; the index is zeroed and freed. Returns the root.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Node* BuildHeap(MallocType type, int reachable, int subtrees)
    {
        Node** index = (Node**)NativeMemory.Alloc((nuint)reachable, (nuint)sizeof(Node*));
        int budget = subtrees;
        int leakEvery = reachable / budget;
        int since = 0;
        for (int i = 0; i < reachable; i++)
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

        for (int i = 0; i < reachable; i++)
        {
            index[i]->Left = 2 * i + 1 < reachable ? index[2 * i + 1] : null;
            index[i]->Right = 2 * i + 2 < reachable ? index[2 * i + 2] : null;
        }

        Node* treeRoot = index[0];
        NativeMemory.Clear(index, (nuint)reachable * (nuint)sizeof(Node*)); // no stale copies of the pointers
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

    // ---- the peers: LeakSanitizer and valgrind ----------------------------------------------------------------------

    /// <summary>
    /// leakbench.c's peer builds, made once per run into a temporary directory (deleted on dispose): clang's
    /// LeakSanitizer build and gcc's valgrind build. A peer that cannot be built or run is skipped with one note.
    /// </summary>
    internal sealed class PeerTools(Results results) : IDisposable
    {
        public const string Lsan = "lsan";
        public const string Valgrind = "valgrind";

        /// <summary>The environment variable that names leakbench.c when it is not found above the directories.</summary>
        public const string SourceVariable = "KMEM_LEAKBENCH_C";

        private readonly Dictionary<string, string?> _built = new(StringComparer.Ordinal);
        private DirectoryInfo? _temp;

        /// <summary>
        /// Runs <paramref name="tool"/>'s build of leakbench on <paramref name="objects"/> objects with
        /// <paramref name="checks"/> checks; returns the median of checks 3 to <paramref name="checks"/> (the only one
        /// when 1) in ns per object, or null with a note.
        /// </summary>
        public double? Check(int objects, string tool, int checks)
        {
            string? exe = Build(tool);
            if (exe is null)
            {
                return null;
            }

            string n = objects.ToString(CultureInfo.InvariantCulture);
            string k = checks.ToString(CultureInfo.InvariantCulture);
            ToolRun run = tool == Lsan
                ? ChildProcess.RunTool(exe, [n, k], new Dictionary<string, string> { ["LSAN_OPTIONS"] = "symbolize=0" },
                    s_toolTimeout)
                : ChildProcess.RunTool(ChildProcess.FindOnPath("valgrind")!, ["--leak-check=no", exe, n, k], null,
                    s_toolTimeout);
            var seconds = new double[checks];
            int found = 0;
            foreach (string line in run.Output.Split('\n', StringSplitOptions.TrimEntries))
            {
                if (line.StartsWith("N=", StringComparison.Ordinal) || line.StartsWith("vg blocks", StringComparison.Ordinal))
                {
                    Console.WriteLine($"{tool + ":",-9}{line}");
                }

                if (TryParseCheck(line, out int check, out double s, out string result) && check >= 1 && check <= checks)
                {
                    seconds[check - 1] = s;
                    found |= 1 << (check - 1);
                    Console.WriteLine($"{tool + ":",-9}check {check} {s:F3} s = {s * 1e9 / objects,4:F0} ns/object (result={result})");
                }
            }

            // LSan writes one report per check to stderr; its SUMMARY line gives the count of leaked allocations.
            foreach (IGrouping<string, string> summary in run.ErrorOutput.Split('\n', StringSplitOptions.TrimEntries)
                         .Where(l => l.StartsWith("SUMMARY:", StringComparison.Ordinal)).GroupBy(l => l))
            {
                Console.WriteLine($"{tool + ":",-9}{summary.Key} (in {summary.Count()} of {checks} reports)");
            }

            if (found != (1 << checks) - 1)
            {
                Skip(tool, $"leakbench gave no timings for all {checks} checks (exit code {run.ExitCode}:"
                    + $" {ChildProcess.FirstLine(run.Error ?? run.ErrorOutput)})");
                return null;
            }

            // The median of checks 3..checks (one check: that one).
            double[] measured = seconds[(Math.Min(FirstMeasured, checks) - 1)..];
            Array.Sort(measured);
            return measured[measured.Length / 2] * 1e9 / objects;
        }

        public void Dispose()
        {
            try
            {
                _temp?.Delete(recursive: true);
            }
            catch (IOException)
            {
            }
        }

        /// <summary>The tool's leakbench binary, built on first use; null (with a note, once) when it cannot be.</summary>
        private string? Build(string tool)
        {
            if (_built.TryGetValue(tool, out string? done))
            {
                return done;
            }

            _built[tool] = null;
            string? source = FindLeakbenchSource();
            if (source is null)
            {
                Skip(tool, "shared/peers/leakbench.c not found above the program's or the current directory"
                    + $" (or set {SourceVariable})");
                return null;
            }

            string? compiler;
            string[] flags;
            if (tool == Lsan)
            {
                compiler = ChildProcess.FindOnPath("clang-14") ?? ChildProcess.FindOnPath("clang");
                flags = ["-O2", "-g", "-fsanitize=leak", "-DUSE_LSAN"];
                if (compiler is null)
                {
                    Skip(tool, $"no clang-14 or clang on PATH (on Debian/Ubuntu: apt-get install -y {LsanPackages})");
                    return null;
                }
            }
            else
            {
                compiler = ChildProcess.FindOnPath("gcc") ?? ChildProcess.FindOnPath("cc");
                flags = ["-O2", "-g", "-DUSE_VALGRIND"];
                if (compiler is null || ChildProcess.FindOnPath("valgrind") is null)
                {
                    Skip(tool, compiler is null
                        ? "no gcc or cc on PATH"
                        : "valgrind not on PATH (on Debian/Ubuntu: apt-get install -y valgrind)");
                    return null;
                }
            }

            _temp ??= Directory.CreateTempSubdirectory("kmem-leakbench-");
            string exe = Path.Combine(_temp.FullName, $"leakbench_{tool}");
            ToolRun build = ChildProcess.RunTool(compiler, [.. flags, source, "-o", exe], null, TimeSpan.FromMinutes(2));
            if (!build.Ok)
            {
                Skip(tool, $"{Path.GetFileName(compiler)} could not build leakbench.c"
                    + $" ({ChildProcess.FirstLine(build.Error ?? build.ErrorOutput + build.Output)})"
                    + (tool == Lsan ? $"; on Debian/Ubuntu: apt-get install -y {LsanPackages}" : "; valgrind/memcheck.h missing?"));
                return null;
            }

            _built[tool] = exe;
            return exe;
        }

        private void Skip(string tool, string why)
        {
            Console.WriteLine($"note:    {tool} skipped: {why}");
            results.Notes.Add($"{tool} skipped: {why}");
        }

        /// <summary><see cref="SourceVariable"/> when set, else shared/peers/leakbench.c in the program's or the
        /// current directory, or any directory above them.</summary>
        private static string? FindLeakbenchSource()
        {
            if (Environment.GetEnvironmentVariable(SourceVariable) is { Length: > 0 } given)
            {
                return File.Exists(given) ? Path.GetFullPath(given) : null;
            }

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

        /// <summary>Parses <c>leak_check_&lt;k&gt;_s=&lt;seconds&gt; result=&lt;r&gt;</c>.</summary>
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
    }
}

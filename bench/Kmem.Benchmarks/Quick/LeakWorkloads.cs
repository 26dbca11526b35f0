// Quick/LeakWorkloads.cs — the leak detector's workloads in the quick mode: the cost of tracking on the 64-byte pair
// (tracking on here, off in a child started with KMEMLEAK=off) and the scan of the leakbench heap (1M 64-byte objects)
// beside LeakSanitizer's check of the same graph (shared/peers/leakbench.c), both measured in this run.
using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using Kmem.Benchmarks.Report;

namespace Kmem.Benchmarks.Quick;

internal static unsafe class LeakWorkloads
{
    public const string TrackingWorkload = "pair64-tight-tracking";
    public const string LeakbenchWorkload = "leakbench-1m";
    public const string TrackingOffChildMode = "tracking-off-child";
    private const int Objects = 1_000_000;

    /// <summary>The hidden child mode: the tight pair with KMEMLEAK=off; prints the median ns per pair.</summary>
    public static int RunTrackingOffChild(int repetitions, int pairs)
    {
        Console.WriteLine(TightPairMedian(repetitions, pairs).ToString("F2", CultureInfo.InvariantCulture));
        return 0;
    }

    public static List<BenchRun> Run(int repetitions, int pairs)
    {
        var runs = new List<BenchRun>();
        Console.WriteLine();
        Console.WriteLine($"{TrackingWorkload}: the 64-byte tight pair with leak tracking on (this process) and off (KMEMLEAK=off child)");
        double on = TightPairMedian(repetitions, pairs);
        double? off = ChildTrackingOff(repetitions, pairs);
        runs.Add(new BenchRun(TrackingWorkload, "kmem-tracking", Math.Round(on, 2), "ns"));
        Console.WriteLine($"  tracking on  {on,8:F2} ns/pair");
        if (off is { } o)
        {
            runs.Add(new BenchRun(TrackingWorkload, "kmem", Math.Round(o, 2), "ns"));
            Console.WriteLine($"  tracking off {o,8:F2} ns/pair   ratio on/off {on / o:F2} (target <= 1.3)");
        }
        else
        {
            Console.WriteLine("  note: the KMEMLEAK=off child did not run; no ratio");
        }

        Console.WriteLine();
        Console.WriteLine($"{LeakbenchWorkload}: a full leak scan of the leakbench heap ({Objects:N0} objects of 64 B, 10% leaked as 10-node subtrees)");
        (double kmemNs, double kmemReportNs) = KmemLeakbench();
        runs.Add(new BenchRun(LeakbenchWorkload, "kmem", Math.Round(kmemNs, 1), "ns"));
        double? lsan = LsanLeakbench();
        if (lsan is { } l)
        {
            runs.Add(new BenchRun(LeakbenchWorkload, "lsan", Math.Round(l, 1), "ns"));
            Console.WriteLine($"  ratio kmem/lsan (steady-state scan, ns per object): {kmemNs / l:F2}   (first reporting scan: {kmemReportNs / l:F2})");
        }
        return runs;
    }

    private static double TightPairMedian(int repetitions, int pairs)
    {
        var type = new MallocType("bench-tracking");
        var samples = new List<double>();
        nuint sink = 0;
        for (int r = -1; r < repetitions; r++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < pairs; i++)
            {
                byte* p = (byte*)Heap.Malloc(64, type);
                *p = (byte)i;
                sink += *p;
                Heap.Free(p, type);
            }
            if (r >= 0) // the first round warms up
                samples.Add(Stopwatch.GetElapsedTime(t0).TotalNanoseconds / pairs);
        }
        GC.KeepAlive(sink);
        samples.Sort();
        return samples[samples.Count / 2];
    }

    private static double? ChildTrackingOff(int repetitions, int pairs)
    {
        string? processPath = Environment.ProcessPath;
        if (processPath is null)
            return null;
        var start = new ProcessStartInfo(processPath) { UseShellExecute = false, RedirectStandardOutput = true };
        string? entryPath = Assembly.GetEntryAssembly()?.Location;
        if (!string.IsNullOrEmpty(entryPath)
            && !string.Equals(Path.GetFileName(processPath), Path.GetFileNameWithoutExtension(entryPath), StringComparison.Ordinal))
            start.ArgumentList.Add(entryPath);
        start.ArgumentList.Add(TrackingOffChildMode);
        start.ArgumentList.Add(repetitions.ToString(CultureInfo.InvariantCulture));
        start.ArgumentList.Add(pairs.ToString(CultureInfo.InvariantCulture));
        start.Environment["KMEMLEAK"] = "off";
        using Process? child = Process.Start(start);
        if (child is null)
            return null;
        string output = child.StandardOutput.ReadToEnd();
        child.WaitForExit();
        return child.ExitCode == 0 && double.TryParse(output.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v : null;
    }

    // The leakbench graph (shared/peers/leakbench.c): 90% one binary tree (node i -> 2i+1, 2i+2) rooted in a registered
    // root; after every 90 reachable nodes one 10-node subtree that nothing points to. Returns ns per object of the
    // third scan (steady state) and of the second (the one that reports 100,000 leaks for the first time).
    private static (double Steady, double FirstReport) KmemLeakbench()
    {
        var type = new MallocType("leakbench");
        nint* root = (nint*)NativeMemory.AllocZeroed(8);
        Kmemleak.Alloc(root, 8, 0);
        int reachable = Objects / 10 * 9;
        nint* index = (nint*)NativeMemory.AllocZeroed((nuint)reachable * 8);
        nint* sub = stackalloc nint[10];
        long t0 = Stopwatch.GetTimestamp();
        for (int i = 0; i < reachable; i++)
        {
            index[i] = (nint)NewNode(type, i);
            if (i % 90 == 89)
            {
                for (int j = 0; j < 10; j++)
                    sub[j] = (nint)NewNode(type, j);
                for (int j = 0; j < 10; j++)
                {
                    ((nint*)sub[j])[0] = 2 * j + 1 < 10 ? sub[2 * j + 1] : 0;
                    ((nint*)sub[j])[1] = 2 * j + 2 < 10 ? sub[2 * j + 2] : 0;
                }
            }
        }
        for (int i = 0; i < reachable; i++)
        {
            ((nint*)index[i])[0] = 2 * i + 1 < reachable ? index[2 * i + 1] : 0;
            ((nint*)index[i])[1] = 2 * i + 2 < reachable ? index[2 * i + 2] : 0;
        }
        root[0] = index[0];
        new Span<byte>(index, reachable * 8).Clear(); // no stale copies of the pointers
        NativeMemory.Free(index);
        new Span<nint>(sub, 10).Clear();
        Console.WriteLine($"  kmem: alloc phase {Stopwatch.GetElapsedTime(t0).TotalSeconds:F3} s");

        Kmemleak.Write("minage=0");
        var perObject = new double[3];
        for (int s = 0; s < 3; s++)
        {
            long t = Stopwatch.GetTimestamp();
            LeakScanResult r = Kmemleak.Scan();
            double seconds = Stopwatch.GetElapsedTime(t).TotalSeconds;
            perObject[s] = seconds * 1e9 / Objects;
            var mine = r.Leaks.Where(l => l.Type == "leakbench").ToList();
            Console.WriteLine($"  kmem: scan {s + 1} {seconds:F3} s = {perObject[s]:F0} ns/object; leaks {mine.Count} ({mine.Count(l => l.Direct)} direct, {mine.Count(l => !l.Direct)} indirect); {r.Stats.Objects:N0} objects tracked");
        }
        return (perObject[2], perObject[1]);
    }

    private static long* NewNode(MallocType type, int salt)
    {
        long* n = (long*)Heap.Malloc(64, type);
        n[0] = 0;
        n[1] = 0;
        for (int k = 2; k < 8; k++)
            n[k] = k + salt % 1000; // small integers, never addresses
        return n;
    }

    // Builds leakbench.c with clang's LeakSanitizer and runs three checks of the same graph; null when it cannot.
    private static double? LsanLeakbench()
    {
        string source = FindLeakbenchSource() ?? "";
        string? clang = new[] { "clang-14", "clang" }.FirstOrDefault(c => Which(c) is not null);
        if (source.Length == 0 || clang is null)
        {
            Console.WriteLine("  note: lsan skipped: " + (source.Length == 0 ? "shared/peers/leakbench.c not found" : "no clang (apt-get install -y clang-14 libclang-rt-14-dev)"));
            return null;
        }
        string dir = Directory.CreateTempSubdirectory("leakbench").FullName;
        string exe = Path.Combine(dir, "leakbench_lsan");
        (int build, string buildOut) = RunProcess(clang, ["-O2", "-g", "-fsanitize=leak", "-DUSE_LSAN", source, "-o", exe], null);
        if (build != 0)
        {
            Console.WriteLine($"  note: lsan skipped: {clang} could not build leakbench ({buildOut.Split('\n')[0]}); apt-get install -y libclang-rt-14-dev");
            return null;
        }
        (int code, string output) = RunProcess(exe, [Objects.ToString(CultureInfo.InvariantCulture), "3"], ("LSAN_OPTIONS", "symbolize=0"));
        var checks = output.Split('\n')
            .Select(l => l.Trim())
            .Where(l => l.StartsWith("leak_check_", StringComparison.Ordinal))
            .Select(l => double.Parse(l.Split('=')[1].Split(' ')[0], CultureInfo.InvariantCulture))
            .ToList();
        if (checks.Count < 3)
        {
            Console.WriteLine($"  note: lsan run gave no timings (exit {code})");
            return null;
        }
        for (int i = 0; i < checks.Count; i++)
            Console.WriteLine($"  lsan: check {i + 1} {checks[i]:F3} s = {checks[i] * 1e9 / Objects:F0} ns/object");
        return checks[2] * 1e9 / Objects;
    }

    private static string? FindLeakbenchSource()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "shared", "peers", "leakbench.c");
            if (File.Exists(candidate))
                return candidate;
        }
        return null;
    }

    private static string? Which(string command) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(p => Path.Combine(p, command)).FirstOrDefault(File.Exists);

    private static (int Code, string Output) RunProcess(string file, string[] args, (string Key, string Value)? env)
    {
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        if (env is { } e)
            psi.Environment[e.Key] = e.Value;
        using Process p = Process.Start(psi)!;
        Task<string> err = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output + err.Result);
    }
}

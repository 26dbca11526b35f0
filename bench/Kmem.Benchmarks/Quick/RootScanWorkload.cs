// Quick/RootScanWorkload.cs — what the process roots cost: "sparse-scan" (Kmemleak's read of 1 GiB of pointer-free
// native memory among the process roots, against the same run's read bandwidth: a plain vectorized read loop over the
// same memory) and "idle-scan" (one scan of a small idle .NET process: this program again, in a hidden child mode).
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Kmem.Benchmarks.Report;

namespace Kmem.Benchmarks.Quick;

internal static unsafe class RootScanWorkload
{
    public const string SparseWorkload = "sparse-scan";
    public const string IdleWorkload = "idle-scan";
    public const string ChildMode = "quick-child-idle-scan";
    private const nuint SparseBytes = 1u << 30;
    private const int Repetitions = 5;

    /// <summary>Runs both workloads; adds their rows.</summary>
    public static void Run(Results results)
    {
        results.Describe(SparseWorkload, "GB/s over 1 GiB of pointer-free native memory, best of 5; kmem: process roots"
            + " of `Kmemleak.Scan()` (`gc=off`; ProcessRootBytes / ProcessRootTime), bandwidth: one-thread Vector256 read"
            + " loop over the same buffer");
        results.Describe(IdleWorkload, "one `Kmemleak.Scan()` (defaults) in a small idle .NET process (fresh child),"
            + " median of 7 scans");
        if (!Kmemleak.IsEnabled)
        {
            Console.WriteLine();
            Console.WriteLine("note:    root scans skipped: leak tracking is off in this process (KMEMLEAK=off?)");
            results.Notes.Add("root scans skipped: leak tracking is off in this process");
            return;
        }

        Sparse(results);
        Idle(results);
    }

    // ---- sparse-scan ------------------------------------------------------------------------------------------------

    private static void Sparse(Results results)
    {
        Console.WriteLine();
        Console.WriteLine($"{SparseWorkload}: 1 GiB of pointer-free native memory among the process roots; GB/s, best of {Repetitions}");
        if (!Kmemleak.ProcessRootsSupported)
        {
            Console.WriteLine("note:    skipped: process roots are not available on this OS");
            results.Notes.Add($"{SparseWorkload} skipped: process roots are not available on this OS");
            return;
        }

        ulong* data = (ulong*)NativeMemory.Alloc(SparseBytes);
        try
        {
            // Small integers: never in kmem_map, never a registered object's address.
            nuint words = SparseBytes / 8;
            for (nuint i = 0; i < words; i++)
            {
                data[i] = (i * 2654435761UL) & 0xffff_ffff;
            }

            double loop = 0;
            for (int r = 0; r < Repetitions; r++)
            {
                long t0 = Stopwatch.GetTimestamp();
                ulong sink = ReadLoop(data, words);
                double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                loop = Math.Max(loop, SparseBytes / s / 1e9);
                GC.KeepAlive(sink);
            }

            Kmemleak.Write("gc=off"); // the roots alone: no forced GC in the figure
            double scan = 0, wholeRoots = 0;
            long rootBytes = 0;
            int passes = 0;
            for (int r = 0; r < Repetitions; r++)
            {
                LeakScanStats stats = Kmemleak.Scan().Stats;
                double gbs = stats.ProcessRootBytes / stats.ProcessRootTime.TotalSeconds / 1e9;
                if (gbs > scan)
                {
                    scan = gbs;
                    wholeRoots = stats.ProcessRootTime.TotalMilliseconds;
                    rootBytes = stats.ProcessRootBytes;
                    passes = stats.Passes;
                }
            }

            Kmemleak.Write("gc=on");
            Console.WriteLine($"bandwidth: {loop,6:F2} GB/s  (one thread, Vector{(Vector256.IsHardwareAccelerated ? "256" : "128")} OR over the buffer)");
            Console.WriteLine($"kmem:      {scan,6:F2} GB/s  ({rootBytes / 1e6:F0} MB of roots in {wholeRoots:F1} ms, {passes} pass(es);"
                + $" process_vm_readv + vector range filter on {Math.Min(Environment.ProcessorCount, 8)} thread(s))");
            Console.WriteLine($"ratio kmem/bandwidth {scan / loop:F2} (target >= 0.60)");
            results.AddOne(SparseWorkload, "kmem", scan, "GB/s");
            results.AddOne(SparseWorkload, "bandwidth", loop, "GB/s");
        }
        finally
        {
            NativeMemory.Free(data);
        }
    }

    private static ulong ReadLoop(ulong* p, nuint words)
    {
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<ulong> a = Vector256<ulong>.Zero, b = a, c = a, d = a;
            nuint i = 0;
            for (; i + 16 <= words; i += 16)
            {
                a |= Vector256.Load(p + i);
                b |= Vector256.Load(p + i + 4);
                c |= Vector256.Load(p + i + 8);
                d |= Vector256.Load(p + i + 12);
            }

            ulong r = ((a | b) | (c | d)).GetElement(0);
            for (; i < words; i++)
            {
                r |= p[i];
            }

            return r;
        }

        ulong s = 0;
        for (nuint i = 0; i < words; i++)
        {
            s |= p[i];
        }

        return s;
    }

    // ---- idle-scan --------------------------------------------------------------------------------------------------

    private static void Idle(Results results)
    {
        Console.WriteLine();
        Console.WriteLine($"{IdleWorkload}: one Kmemleak.Scan() (gc=on, process roots) in a small idle .NET process (this program, fresh)");
        ToolRun child = ChildProcess.RunSelf([ChildMode], null, TimeSpan.FromMinutes(2));
        string? line = child.Output.Split('\n').FirstOrDefault(l => l.StartsWith("idle ", StringComparison.Ordinal));
        if (!child.Ok || line is null)
        {
            string why = $"the child failed ({child.Error ?? $"exit code {child.ExitCode}"})";
            Console.WriteLine($"note:    skipped: {why}");
            results.Notes.Add($"{IdleWorkload} skipped: {why}");
            return;
        }

        var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1)
            .Select(f => f.Split('=')).ToDictionary(f => f[0], f => double.Parse(f[1], CultureInfo.InvariantCulture));
        Console.WriteLine($"kmem:    {fields["roots_mb"]:F1} MB of roots in {fields["ranges"]:F0} ranges; scan {fields["total_ms"]:F2} ms"
            + $" (GC {fields["gc_ms"]:F2}, process roots {fields["roots_ms"]:F2}, marking {fields["mark_ms"]:F2}, classification"
            + $" {fields["classify_ms"]:F2}); median of {fields["scans"]:F0} scans");
        results.AddOne(IdleWorkload, "kmem-roots", fields["roots_mb"], "MB");
        results.AddOne(IdleWorkload, "kmem-scan", fields["total_ms"], "ms");
    }

    /// <summary>The child: a small idle process that scans a few times and prints the median scan's figures.</summary>
    public static int RunChild()
    {
        const int scans = 7;
        var all = new List<LeakScanStats>();
        Kmemleak.Scan(); // the first scan starts the worker threads and commits the bitmaps
        for (int i = 0; i < scans; i++)
        {
            all.Add(Kmemleak.Scan().Stats);
        }

        LeakScanStats m = all.OrderBy(s => s.Duration).ElementAt(scans / 2);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"idle roots_mb={m.ProcessRootBytes / 1e6:F2} ranges={m.ProcessRootRanges} total_ms={m.Duration.TotalMilliseconds:F3}"
            + $" gc_ms={m.GcTime.TotalMilliseconds:F3} roots_ms={m.ProcessRootTime.TotalMilliseconds:F3}"
            + $" mark_ms={(m.MarkTime - m.ProcessRootTime).TotalMilliseconds:F3} classify_ms={m.ClassifyTime.TotalMilliseconds:F3} scans={scans}"));
        return 0;
    }
}

// Quick/TrackingWorkload.cs — the "pair64-tight-tracking" workload: what leak tracking costs a 64-byte Malloc+Free
// pair. Times pair64-tight's kmem loop in this process (tracking on) and in a child started with KMEMLEAK=off
// (tracking off), alternating their repetitions; also the child's side of that exchange (the hidden mode).
using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using Kmem.Benchmarks.Report;

namespace Kmem.Benchmarks.Quick;

/// <summary>
/// Leak tracking can only be turned off for a whole process, at start (<c>KMEMLEAK=off</c>), so the tracking-off side
/// runs in a child: this program again, in the hidden mode <see cref="ChildMode"/>. The child warms up, writes
/// <c>ready</c>, then times one repetition for each <c>run</c> line it reads and writes one number (ns per pair).
/// The parent alternates its own repetitions with the child's, swapping which goes first each time, so slow drift
/// lands on both subjects; only one side runs at a time.
/// </summary>
internal static class TrackingWorkload
{
    public const string Workload = "pair64-tight-tracking";

    /// <summary>The hidden argument that starts the tracking-off child: <c>quick-child-tracking-off PAIRS</c>.</summary>
    public const string ChildMode = "quick-child-tracking-off";

    private const double Target = 1.3;
    private const int ChunkUnit = 1000;
    private const string ReadyLine = "ready";
    private const string RunLine = "run";
    private static readonly TimeSpan s_warmup = TimeSpan.FromMilliseconds(150);
    private static readonly TimeSpan s_childTimeout = TimeSpan.FromSeconds(60);

    /// <summary>Keeps every checksum alive so the JIT cannot drop the work that produced it.</summary>
    private static nuint s_sink;

    /// <summary>
    /// Measures tracking on (subject <c>kmem-tracking</c>) and off (subject <c>kmem</c>), prints both and the ratio,
    /// and returns their rows (none when tracking is already off here; only <c>kmem-tracking</c> if the child fails).
    /// </summary>
    public static List<BenchRun> Run(int repetitions, int pairs)
    {
        Console.WriteLine();
        Console.WriteLine($"{Workload}: pair64-tight's kmem loop with leak tracking on (this process) and off"
            + " (a child started with KMEMLEAK=off), repetitions alternating");
        if (!Kmemleak.IsEnabled)
        {
            Console.WriteLine("note:    skipped: leak tracking is off in this process (KMEMLEAK=off?)");
            return [];
        }

        var on = new List<double>(repetitions);
        var off = new List<double>(repetitions);
        string? failure = null;
        Process? child = StartChild(pairs, ref failure);
        try
        {
            WarmUp(pairs);
            if (child is not null && failure is null && ReadFromChild(child, ref failure) is { } ready
                && ready != ReadyLine)
            {
                failure = $"the child said '{ready}' instead of '{ReadyLine}'";
            }

            for (int rep = 0; rep < repetitions; rep++)
            {
                bool childFirst = rep % 2 == 1;
                if (childFirst)
                {
                    AskChild(child, off, ref failure);
                }

                on.Add(TimeOnce(pairs));
                if (!childFirst)
                {
                    AskChild(child, off, ref failure);
                }
            }
        }
        finally
        {
            StopChild(child);
        }

        var runs = new List<BenchRun> { new(Workload, "kmem-tracking", Math.Round(Median(on), 2), "ns") };
        Console.WriteLine($"{"workload",-22} {"subject",-13} {"ns/pair",8}  (min-max)");
        Console.WriteLine($"{Workload,-22} {"kmem-tracking",-13} {Median(on),8:F2}  ({on.Min():F2}-{on.Max():F2})");
        if (failure is not null || off.Count != repetitions)
        {
            Console.WriteLine($"note:    tracking-off child failed ({failure ?? "too few answers"}); no 'kmem' figure, no ratio");
            return runs;
        }

        runs.Add(new BenchRun(Workload, "kmem", Math.Round(Median(off), 2), "ns"));
        Console.WriteLine($"{Workload,-22} {"kmem",-13} {Median(off),8:F2}  ({off.Min():F2}-{off.Max():F2})");
        double ratio = Median(on) / Median(off);
        Console.WriteLine($"ratio tracking on/off (kmem-tracking/kmem) {ratio:F2}   target <= {Target:F1}: "
            + (ratio <= Target ? "met" : "missed"));
        return runs;
    }

    /// <summary>
    /// The child's side (<c>quick-child-tracking-off PAIRS</c>, started with <c>KMEMLEAK=off</c>): warm up, write
    /// <c>ready</c>, then answer each <c>run</c> line with the ns per pair of one repetition; stop at end of input.
    /// </summary>
    public static int RunChild(string pairsText)
    {
        if (!int.TryParse(pairsText, NumberStyles.None, CultureInfo.InvariantCulture, out int pairs) || pairs < ChunkUnit)
        {
            Console.Error.WriteLine($"error: {ChildMode} needs a number of pairs of at least {ChunkUnit}, not '{pairsText}'");
            return 2;
        }

        if (Kmemleak.IsEnabled)
        {
            Console.Error.WriteLine($"error: {ChildMode} must be started with KMEMLEAK=off (leak tracking is on)");
            return 3;
        }

        WarmUp(pairs);
        Console.WriteLine(ReadyLine);
        while (Console.ReadLine() is RunLine)
        {
            Console.WriteLine(TimeOnce(pairs).ToString("R", CultureInfo.InvariantCulture));
        }

        GC.KeepAlive(s_sink);
        return 0;
    }

    /// <summary>One timed repetition of pair64-tight's kmem loop: ns per pair.</summary>
    private static double TimeOnce(int pairs)
    {
        long start = Stopwatch.GetTimestamp();
        s_sink += QuickRunner.KmemTight(pairs);
        long elapsed = Stopwatch.GetTimestamp() - start;
        return elapsed * 1e9 / Stopwatch.Frequency / pairs;
    }

    /// <summary>The quick mode's warm-up for one cell: two passes of at least 150 ms and 40 chunks each.</summary>
    private static void WarmUp(int pairs)
    {
        int chunk = Math.Max(ChunkUnit, pairs / 40 / ChunkUnit * ChunkUnit);
        long budget = (long)(s_warmup.TotalSeconds * Stopwatch.Frequency);
        for (int pass = 0; pass < 2; pass++)
        {
            long start = Stopwatch.GetTimestamp();
            int calls = 0;
            while (calls < 40 || Stopwatch.GetTimestamp() - start < budget)
            {
                s_sink += QuickRunner.KmemTight(chunk);
                calls++;
            }
        }
    }

    private static Process? StartChild(int pairs, ref string? failure)
    {
        ProcessStartInfo? start = QuickRunner.SelfStartInfo();
        if (start is null)
        {
            failure = "no process path to start it from";
            return null;
        }

        start.ArgumentList.Add(ChildMode);
        start.ArgumentList.Add(pairs.ToString(CultureInfo.InvariantCulture));
        start.Environment["KMEMLEAK"] = "off";
        start.RedirectStandardInput = true;
        start.RedirectStandardOutput = true; // stderr is shared, so a failing child's message is seen
        try
        {
            return Process.Start(start) ?? throw new InvalidOperationException("Process.Start returned null");
        }
        catch (Exception e) when (e is Win32Exception or InvalidOperationException)
        {
            failure = $"could not start it: {e.Message}";
            return null;
        }
    }

    /// <summary>Has the child time one repetition and adds its answer to <paramref name="samples"/>.</summary>
    private static void AskChild(Process? child, List<double> samples, ref string? failure)
    {
        if (child is null || failure is not null)
        {
            return;
        }

        try
        {
            child.StandardInput.WriteLine(RunLine);
            child.StandardInput.Flush();
        }
        catch (IOException e)
        {
            failure = $"it stopped reading ({e.Message})";
            return;
        }

        if (ReadFromChild(child, ref failure) is not { } line)
        {
            return;
        }

        if (double.TryParse(line, NumberStyles.Float, CultureInfo.InvariantCulture, out double ns) && ns > 0)
        {
            samples.Add(ns);
        }
        else
        {
            failure = $"it answered '{line}' instead of a number";
        }
    }

    /// <summary>The child's next line, or null (and <paramref name="failure"/> set) on exit, end of output or timeout.</summary>
    private static string? ReadFromChild(Process child, ref string? failure)
    {
        using var timeout = new CancellationTokenSource(s_childTimeout);
        try
        {
            string? line = child.StandardOutput.ReadLineAsync(timeout.Token).AsTask().GetAwaiter().GetResult();
            if (line is null)
            {
                child.WaitForExit();
                failure = $"it exited with code {child.ExitCode}";
            }

            return line?.Trim();
        }
        catch (OperationCanceledException)
        {
            failure = $"no answer within {s_childTimeout.TotalSeconds:F0} s";
            return null;
        }
    }

    /// <summary>Closes the child's input (its signal to finish) and waits briefly; kills it if it does not exit.</summary>
    private static void StopChild(Process? child)
    {
        if (child is null)
        {
            return;
        }

        try
        {
            child.StandardInput.Close();
            if (!child.WaitForExit(TimeSpan.FromSeconds(10)))
            {
                child.Kill(entireProcessTree: true);
                child.WaitForExit();
            }
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or Win32Exception)
        {
            // Already gone; nothing to clean up.
        }
        finally
        {
            child.Dispose();
        }
    }

    private static double Median(List<double> samples)
    {
        double[] sorted = [.. samples.Order()];
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}

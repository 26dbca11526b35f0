// Quick/KmemChild.cs — the `kmem` subject of the allocation workloads: Kmem with leak tracking off, which only a
// process started with KMEMLEAK=off has. Owns both sides of the exchange: the parent's handle on that child (start,
// warm, run, stop) and the child's command loop (the hidden mode quick-child-tracking-off).
using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;

namespace Kmem.Benchmarks.Quick;

/// <summary>
/// The child is this program again in the hidden mode <see cref="ChildMode"/>, started with <c>KMEMLEAK=off</c>. It
/// writes <c>ready</c>, then reads one command per line and answers each with one line:
/// <list type="bullet">
/// <item><c>warm WORKLOAD OPS [ALLOCATOR]</c>: the harness's warm-up of that workload's loop for <c>kmem</c> (the
/// default: Heap.Malloc/Free) or <c>kmem-batch</c> (a MallocBatch); answers <c>ok</c>.</item>
/// <item><c>run WORKLOAD OPS [ALLOCATOR]</c>: one timed repetition; answers ns per operation.</item>
/// <item><c>run</c>: pair64-tight with the PAIRS given on the command line (warmed on first use; the protocol of
/// bench/scripts/ab_tight.py).</item>
/// <item><c>mixing</c>: <see cref="BlockMixing.Measure"/>, between repetitions (docs/benchmarks.md, 2-thread scaling).</item>
/// </list>
/// Errors are answered with a line starting <c>error</c>. The child stops at end of input. The parent asks for one
/// repetition at a time, between its own, so the child and the parent never run at once.
/// </summary>
internal sealed class KmemChild : IDisposable
{
    /// <summary>The hidden argument that starts the child: <c>quick-child-tracking-off [PAIRS]</c>.</summary>
    public const string ChildMode = "quick-child-tracking-off";

    private const string ReadyLine = "ready";
    private static readonly TimeSpan s_answerTimeout = TimeSpan.FromSeconds(120);

    private readonly Process _process;

    private KmemChild(Process process) => _process = process;

    /// <summary>Why the child stopped answering, or null while it works.</summary>
    public string? Failure { get; private set; }

    /// <summary>Starts the child and waits for <c>ready</c>; null with <paramref name="failure"/> set when it cannot.</summary>
    public static KmemChild? Start(out string? failure)
    {
        failure = null;
        if (ChildProcess.SelfStartInfo() is not { } start)
        {
            failure = "no process path to start it from";
            return null;
        }

        start.ArgumentList.Add(ChildMode);
        start.Environment["KMEMLEAK"] = "off";
        start.Environment.Remove("KMEM_BENCH_CHILD_TRACKING"); // (ab_tight.py --tracking's; these children run without)
        start.RedirectStandardInput = true;
        start.RedirectStandardOutput = true; // stderr is shared, so a failing child's message is seen
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException("Process.Start returned null");
        }
        catch (Exception e) when (e is Win32Exception or InvalidOperationException)
        {
            failure = $"could not start it: {e.Message}";
            return null;
        }

        var child = new KmemChild(process);
        if (child.ReadLine() is not { } ready || ready != ReadyLine)
        {
            failure = child.Failure ?? "it did not say ready";
            child.Dispose();
            return null;
        }

        return child;
    }

    /// <summary>Has the child warm up <paramref name="workload"/>; false (and <see cref="Failure"/> set) on error.</summary>
    public bool Warm(string workload, int ops, string allocator = AllocWorkloads.Kmem) =>
        Ask($"warm {workload} {ops} {allocator}") == "ok" || Fail("warm-up refused");

    /// <summary>One repetition of <paramref name="workload"/> in the child: ns per operation, or null on failure.</summary>
    public double? Run(string workload, int ops, string allocator = AllocWorkloads.Kmem)
    {
        string? line = Ask($"run {workload} {ops} {allocator}");
        if (line is null)
        {
            return null;
        }

        if (double.TryParse(line, NumberStyles.Float, CultureInfo.InvariantCulture, out double ns) && ns > 0)
        {
            return ns;
        }

        Fail($"it answered '{line}' instead of a number");
        return null;
    }

    /// <summary>Closes the child's input (its signal to finish) and waits briefly; kills it if it does not exit.</summary>
    public void Dispose()
    {
        try
        {
            _process.StandardInput.Close();
            if (!_process.WaitForExit(TimeSpan.FromSeconds(10)))
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit();
            }
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or Win32Exception)
        {
            // Already gone; nothing to clean up.
        }
        finally
        {
            _process.Dispose();
        }
    }

    private bool Fail(string why)
    {
        Failure ??= why;
        return false;
    }

    private string? Ask(string command)
    {
        if (Failure is not null)
        {
            return null;
        }

        try
        {
            _process.StandardInput.WriteLine(command);
            _process.StandardInput.Flush();
        }
        catch (IOException e)
        {
            Fail($"it stopped reading ({e.Message})");
            return null;
        }

        return ReadLine();
    }

    /// <summary>The child's next line, or null (and <see cref="Failure"/> set) on exit, end of output or timeout.</summary>
    private string? ReadLine()
    {
        using var timeout = new CancellationTokenSource(s_answerTimeout);
        try
        {
            string? line = _process.StandardOutput.ReadLineAsync(timeout.Token).AsTask().GetAwaiter().GetResult();
            if (line is null)
            {
                _process.WaitForExit();
                Fail($"it exited with code {_process.ExitCode}");
                return null;
            }

            line = line.Trim();
            if (line.StartsWith("error", StringComparison.Ordinal))
            {
                Fail(line);
                return null;
            }

            return line;
        }
        catch (OperationCanceledException)
        {
            Fail($"no answer within {s_answerTimeout.TotalSeconds:F0} s");
            return null;
        }
    }

    // ---- the child's side -------------------------------------------------------------------------------------------

    /// <summary>The child's command loop (see the class comment). <paramref name="args"/> are those after the mode.</summary>
    public static int RunChild(string[] args)
    {
        int legacyPairs = 2_000_000;
        if (args.Length > 1 || (args.Length == 1 && !TryParseOps(args[0], out legacyPairs)))
        {
            Console.Error.WriteLine($"error: {ChildMode} takes at most one argument, a number of pairs of at least 4000");
            return 2;
        }

        // KMEM_BENCH_CHILD_TRACKING=1 (bench/scripts/ab_tight.py --tracking): the same loops with leak tracking on.
        bool tracking = Environment.GetEnvironmentVariable("KMEM_BENCH_CHILD_TRACKING") == "1";
        if (Kmemleak.IsEnabled != tracking)
        {
            Console.Error.WriteLine(tracking
                ? $"error: {ChildMode} with KMEM_BENCH_CHILD_TRACKING=1 needs leak tracking on (is KMEMLEAK=off set?)"
                : $"error: {ChildMode} must be started with KMEMLEAK=off (leak tracking is on)");
            return 3;
        }

        Console.WriteLine(ReadyLine);
        bool legacyWarm = false;
        while (Console.ReadLine() is { } line)
        {
            string[] words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            Console.WriteLine(Answer(words, legacyPairs, ref legacyWarm));
        }

        GC.KeepAlive(Timing.Sink);
        return 0;
    }

    private static string Answer(string[] words, int legacyPairs, ref bool legacyWarm)
    {
        if (words is ["mixing"])
        {
            return BlockMixing.Measure();
        }

        if (words is ["run"])
        {
            Func<int, nuint> tight = AllocWorkloads.Loop(AllocWorkloads.Tight, AllocWorkloads.Kmem)!;
            if (!legacyWarm)
            {
                Timing.WarmUp(tight, legacyPairs);
                legacyWarm = true;
            }

            return Timing.TimeOnce(tight, legacyPairs).ToString("R", CultureInfo.InvariantCulture);
        }

        if (words is not [("warm" or "run") and var verb, var workload, var opsText, .. var rest] || rest.Length > 1
            || !TryParseOps(opsText, out int ops))
        {
            return $"error: expected 'warm WORKLOAD OPS [ALLOCATOR]', 'run WORKLOAD OPS [ALLOCATOR]' or 'run', not '{string.Join(' ', words)}'";
        }

        string allocator = rest is [var named] ? named : AllocWorkloads.Kmem;
        if (allocator is not (AllocWorkloads.Kmem or AllocWorkloads.KmemBatch))
        {
            return $"error: the child runs kmem or kmem-batch, not '{allocator}'";
        }

        if (AllocWorkloads.Loop(workload, allocator) is not { } loop)
        {
            return $"error: unknown workload '{workload}'";
        }

        if (verb == "warm")
        {
            Timing.WarmUp(loop, ops);
            return "ok";
        }

        return Timing.TimeOnce(loop, ops).ToString("R", CultureInfo.InvariantCulture);
    }

    private static bool TryParseOps(string text, out int ops) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out ops) && ops >= 4000;
}

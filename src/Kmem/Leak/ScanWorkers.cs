// Leak/ScanWorkers.cs — the leak scanner's worker threads: one per extra core (at most 7), started once and parked
// between jobs. A job runs on every worker and on the scanning thread at once (reading the process roots, marking);
// the workers' stacks are left out of the process roots, since they hold the scanner's own transient pointers.
using Kmem.Diagnostics;
using Kmem.Platform;

namespace Kmem.Leak;

internal static unsafe class ScanWorkers
{
    private sealed class Worker(int lane)
    {
        public readonly int Lane = lane;
        public int Tid;
        public nuint StackComplement;
        public readonly AutoResetEvent Go = new(false);
    }

    private static readonly object s_lock = new();
    private static Worker[] s_workers = Array.Empty<Worker>();
    private static bool s_tried;
    private static Action<int> s_job = static _ => { };
    private static CountdownEvent? s_done;
    private static Exception? s_failure;

    /// <summary>How many threads a job runs on: the workers and the calling thread (lane 0).</summary>
    public static int Lanes
    {
        get
        {
            EnsureStarted();
            return s_workers.Length + 1;
        }
    }

    /// <summary>Whether a lane of the running job has failed: long jobs stop early.</summary>
    public static bool Failed => Volatile.Read(ref s_failure) is not null;

    /// <summary>The workers' thread ids and a stack address of each (complemented), to keep their stacks out of the roots.</summary>
    public static List<(int Tid, nuint StackComplement)> Stacks()
    {
        EnsureStarted();
        var list = new List<(int, nuint)>();
        foreach (Worker w in s_workers)
            list.Add((w.Tid, w.StackComplement));
        return list;
    }

    /// <summary>Runs <paramref name="job"/>(lane) on every lane at once, lane 0 on the calling thread, and returns when all
    /// have returned; the first failure is rethrown here. Called under the scan lock (one job at a time).</summary>
    public static void Run(Action<int> job)
    {
        EnsureStarted();
        s_failure = null;
        s_job = job;
        using (s_done = new CountdownEvent(s_workers.Length))
        {
            foreach (Worker w in s_workers)
                w.Go.Set();
            try
            {
                job(0);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref s_failure, e, null);
            }
            finally
            {
                s_done.Wait();
            }
        }
        s_done = null;
        s_job = static _ => { };
        if (Interlocked.Exchange(ref s_failure, null) is { } failure)
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
    }

    private static void EnsureStarted()
    {
        lock (s_lock)
        {
            if (s_tried)
                return;
            s_tried = true; // once: a process out of threads or memory gets fewer workers, not a retry per scan
            var workers = new List<Worker>();
            for (int i = 0, n = Math.Min(Environment.ProcessorCount - 1, 7); i < n; i++)
            {
                try
                {
                    var w = new Worker(workers.Count + 1);
                    var ready = new ManualResetEventSlim(); // never disposed: its thread signals it
                    new Thread(() => WorkerLoop(w, ready)) { IsBackground = true, Name = "kmemleak-scan" }.Start();
                    ready.Wait();
                    workers.Add(w);
                }
                catch (Exception e) when (e is OutOfMemoryException or ThreadStartException)
                {
                    KmemDiagnostics.Publish(KmemMessageKind.Warning,
                        $"kmemleak: {workers.Count} scan worker thread(s) instead of {n}: {e.Message}");
                    break;
                }
            }
            s_workers = workers.ToArray();
        }
    }

    private static void WorkerLoop(Worker w, ManualResetEventSlim ready)
    {
        int marker = 0;
        w.Tid = OsPages.Provider.CurrentThreadId();
        w.StackComplement = ~(nuint)(&marker);
        ready.Set();
        while (true)
        {
            w.Go.WaitOne();
            try
            {
                s_job(w.Lane);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref s_failure, e, null); // rethrown on the scanning thread
            }
            finally
            {
                s_done!.Signal();
            }
        }
    }
}

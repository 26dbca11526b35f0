// Stress/StressEngine.cs — the engine of `dotnet-kmem stress`: worker threads run random malloc / realloc / free
// (with cross-thread frees), per-CPU and vmalloc memory, limited types (NoWait and WaitOk), type detach/attach and
// DIAGNOSTIC toggles over a structure of blocks reachable from registered kmemleak roots, while another thread scans
// for leaks. Every block carries a pattern derived from its tag, checked on every touch and at free. The run pauses now
// and then for Heap.Verify and a statistics check, and at the end frees everything and checks that every figure is back
// to zero. It stresses the process it runs in (Kmem's state is process-wide). Tests run it through the tool command.
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Kmem.Tool.Stress;

/// <summary>What to run: duration (or an operation budget), threads, seed, failure injection.</summary>
public sealed record StressOptions(double Seconds, int Threads, int Seed, int FailNoWait = 0, int FailPages = 0, long MaxOps = 0, int Slots = 8192);

/// <summary>What a run did and found. <see cref="Problems"/> empty means the run passed.</summary>
public sealed class StressReport
{
    public required StressOptions Options { get; init; }
    public required IReadOnlyDictionary<string, long> Ops { get; init; }
    public long TotalOps { get; init; }
    public TimeSpan Elapsed { get; init; }
    public long Corruptions { get; init; }
    public long FalseLeakReports { get; init; }
    public long LeakReportsSeen { get; init; }
    public long Scans { get; init; }
    public long VerifyRuns { get; init; }
    public long NoWaitNulls { get; init; }
    public long InjectedNoWait { get; init; }
    public long InjectedPages { get; init; }
    public long VerifyProblems { get; init; }
    public required IReadOnlyList<string> Problems { get; init; }
}

public static unsafe class StressEngine
{
    // Operation kinds, counted per thread.
    private enum Op { Malloc, Large, Free, Realloc, Touch, ChildAlloc, ChildFree, PercpuAlloc, PercpuFree, Vmalloc, Vfree, NoWaitNull, VmallocNull, DiagToggle, DetachAttach, Count }

    private const byte Empty = 0, Block = 1, Percpu = 2, Varea = 3;
    private const int DenseLimit = 64 * 1024;   // blocks up to this size are patterned in full
    private const nuint LimitBytes = 1 << 20;   // the limited type's limit
    private const int LimitMaxSize = 4096;

    private sealed class Run
    {
        public StressOptions O = null!;
        public MallocType[] Types = null!;      // 0 a, 1 b, 2 diag1, 3 diag2, 4 lim, 5 churn, 6 large, 7 pcpu, 8 vm
        public const int A = 0, B = 1, Diag1 = 2, Diag2 = 3, Lim = 4, Churn = 5, LargeT = 6, Pcpu = 7, Vm = 8;
        public readonly ReaderWriterLockSlim ChurnLock = new(LockRecursionPolicy.NoRecursion);

        // The structure: root slot i holds a block (or a per-CPU cookie, or a vmalloc address); a block of 16 bytes or
        // more may hold a child block's address in its first word. Only the roots and the blocks hold addresses.
        public nint* Roots;
        public int[] Locks = null!;
        public byte[] Kind = null!;
        public nuint[] Size = null!;
        public nuint[] Rounded = null!;         // the block's size as accounted (a block that shrank in place keeps it)
        public byte[] TypeOf = null!;
        public uint[] Tag = null!;
        public long[] Linked = null!;           // Stopwatch ticks when the slot's object was linked
        public nuint[] ChildSize = null!;
        public byte[] ChildType = null!;
        public uint[] ChildTag = null!;
        public long[] ChildLinked = null!;
        public nint* InFlight;                  // per worker, 2 words: objects unlinked but not yet freed (a root too)

        public volatile bool Stop, Pause;
        public int Parked;
        public readonly ManualResetEventSlim Resume = new(true);
        public long[][] Counts = null!;
        public long VmAreasAtStart;
        public long Corruptions, FalseReports, ReportsSeen, Scans, VerifyRuns, VerifyProblems;
        public readonly List<string> Problems = new();
        public int ProblemsListed;

        public void Problem(string text)
        {
            lock (Problems)
            {
                if (ProblemsListed++ < 100)
                    Problems.Add(text);
            }
        }
    }

    /// <summary>Runs the stress test in this process. <paramref name="progress"/> gets a line now and then.</summary>
    public static StressReport RunStress(StressOptions o, Action<string>? progress = null)
    {
        if (o.Threads < 1 || o.Seconds <= 0 || o.Slots < 16)
            throw new ArgumentException("threads must be at least 1, seconds positive, slots at least 16");
        var r = new Run { O = o };
        long injectedNoWait0 = KmemOptions.InjectedNoWaitFailures, injectedPages0 = KmemOptions.InjectedPageFailures;
        Action<KmemMessageKind, string> onMessage = (kind, text) => OnMessage(r, kind, text);
        KmemDiagnostics.Message += onMessage;
        var sw = Stopwatch.StartNew();
        try
        {
            Setup(r);
            KmemOptions.FailNoWaitEvery = o.FailNoWait;
            KmemOptions.FailPageRequestsEvery = o.FailPages;
            var workers = new Thread[o.Threads];
            for (int t = 0; t < o.Threads; t++)
            {
                int id = t;
                workers[t] = new Thread(() => Worker(r, id)) { IsBackground = true, Name = $"stress-{id}" };
                workers[t].Start();
            }
            var scanner = new Thread(() => Scanner(r)) { IsBackground = true, Name = "stress-scan" };
            scanner.Start();

            double nextVerify = 10, nextProgress = 30;
            while (!r.Stop)
            {
                Thread.Sleep(50);
                double now = sw.Elapsed.TotalSeconds;
                if (now >= o.Seconds || (o.MaxOps > 0 && TotalOps(r) >= o.MaxOps))
                    break;
                if (now >= nextVerify)
                {
                    nextVerify = now + Math.Max(10, o.Seconds / 10);
                    CheckpointPaused(r, "checkpoint");
                }
                if (progress is not null && now >= nextProgress)
                {
                    nextProgress = now + 60;
                    progress($"stress: {now:F0} s, {TotalOps(r):N0} operations, {r.Scans} scans, {r.Corruptions} corruptions, {r.FalseReports} false leak reports");
                }
            }
            r.Stop = true;
            r.Pause = false;
            r.Resume.Set();
            r.Types[Run.Lim].SetLimit(1UL << 40); // a WaitOk caller waiting at the limit finishes its call
            foreach (Thread w in workers)
                w.Join();
            scanner.Join();
            r.Types[Run.Lim].SetLimit(LimitBytes);
            KmemOptions.FailNoWaitEvery = 0;
            KmemOptions.FailPageRequestsEvery = 0;
            TimeSpan elapsed = sw.Elapsed;
            Checkpoint(r, "end of run");
            Teardown(r);
            return new StressReport
            {
                Options = o,
                Ops = Enumerable.Range(0, (int)Op.Count).ToDictionary(k => ((Op)k).ToString(), k => r.Counts.Sum(c => c[k])),
                TotalOps = TotalOps(r),
                Elapsed = elapsed,
                Corruptions = Interlocked.Read(ref r.Corruptions),
                FalseLeakReports = Interlocked.Read(ref r.FalseReports),
                LeakReportsSeen = r.ReportsSeen,
                Scans = r.Scans,
                VerifyRuns = r.VerifyRuns,
                VerifyProblems = r.VerifyProblems,
                NoWaitNulls = r.Counts.Sum(c => c[(int)Op.NoWaitNull]),
                InjectedNoWait = KmemOptions.InjectedNoWaitFailures - injectedNoWait0,
                InjectedPages = KmemOptions.InjectedPageFailures - injectedPages0,
                Problems = r.Problems.ToList(),
            };
        }
        finally
        {
            KmemOptions.FailNoWaitEvery = 0;
            KmemOptions.FailPageRequestsEvery = 0;
            KmemDiagnostics.Message -= onMessage;
        }
    }

    private static long TotalOps(Run r)
    {
        long n = 0;
        foreach (long[] c in r.Counts)
            for (int k = 0; k <= (int)Op.Vfree; k++)
                n += Volatile.Read(ref c[k]);
        return n;
    }

    // Messages that mean the heap found corruption (a correct program never causes them); a type detached with live
    // blocks and the leak count are expected.
    private static void OnMessage(Run r, KmemMessageKind kind, string text)
    {
        if (kind == KmemMessageKind.Panic)
            return; // a panic also throws: the worker that meets an unexpected one reports it
        if (text.StartsWith("Warning: memory type", StringComparison.Ordinal) || text.StartsWith("kmemleak:", StringComparison.Ordinal))
            return;
        if (text.Contains("Data modified", StringComparison.Ordinal) || text.Contains("REDZONE", StringComparison.Ordinal)
            || text.Contains("multiply freed", StringComparison.Ordinal) || text.Contains("verify:", StringComparison.Ordinal))
            Interlocked.Increment(ref r.Corruptions);
        r.Problem($"kmem said: {text.Split('\n')[0]}");
    }

    private static void Setup(Run r)
    {
        StressOptions o = r.O;
        string id = $"{Environment.ProcessId}.{o.Seed}";
        r.Types =
        [
            new MallocType($"stress-a.{id}", "stress: small blocks"),
            new MallocType($"stress-b.{id}", "stress: small blocks"),
            new MallocType($"stress-diag1.{id}", "stress: DIAGNOSTIC toggled"),
            new MallocType($"stress-diag2.{id}", "stress: DIAGNOSTIC toggled"),
            new MallocType($"stress-lim.{id}", "stress: a 1 MiB limit", LimitBytes),
            new MallocType($"stress-churn.{id}", "stress: detached and attached again"),
            new MallocType($"stress-large.{id}", "stress: large blocks"),
            new MallocType($"stress-pcpu.{id}", "stress: per-CPU objects"),
            new MallocType($"stress-vm.{id}", "stress: vmalloc areas"),
        ];
        r.Types[Run.Diag1].Diagnostic = true;
        r.VmAreasAtStart = Heap.VmAreaType.GetStats().InUse;
        int n = o.Slots;
        r.Roots = (nint*)NativeMemory.AllocZeroed((nuint)n * (nuint)sizeof(nint));
        Kmemleak.Alloc(r.Roots, (nuint)n * (nuint)sizeof(nint), 0); // a root: like a module's data
        r.InFlight = (nint*)NativeMemory.AllocZeroed((nuint)(o.Threads * 2 * sizeof(nint)));
        Kmemleak.Alloc(r.InFlight, (nuint)(o.Threads * 2 * sizeof(nint)), 0);
        r.Locks = new int[n];
        r.Kind = new byte[n];
        r.Size = new nuint[n];
        r.Rounded = new nuint[n];
        r.TypeOf = new byte[n];
        r.Tag = new uint[n];
        r.Linked = new long[n];
        r.ChildSize = new nuint[n];
        r.ChildType = new byte[n];
        r.ChildTag = new uint[n];
        r.ChildLinked = new long[n];
        r.Counts = new long[o.Threads][];
        for (int t = 0; t < o.Threads; t++)
            r.Counts[t] = new long[(int)Op.Count + 8]; // padded: threads' counters on separate lines
        // The most sensitive leak detection: only registered roots, every object old enough, one unreferenced scan.
        Kmemleak.Write("process=off");
        Kmemleak.Write("gc=off");
        Kmemleak.Write("minage=0");
        Kmemleak.Write("unref_scans=1");
        Kmemleak.Write("trace=off");
    }

    // ---- patterns ----

    private static ulong Word(uint tag, nuint k) => ((ulong)tag << 32 | tag) ^ ((ulong)k * 0x9E3779B97F4A7C15UL) ^ 0x5A5A5A5A5A5A5A5AUL;

    private static byte PatternByte(uint tag, nuint j) => (byte)(Word(tag, j >> 3) >> (int)((j & 7) * 8));

    // The bytes of a block of `size` the pattern covers from `from` on: all of it up to DenseLimit; above, the first 4 KiB
    // and the first 64 bytes of every later page. The ranges of a smaller size are a subset of a larger one's.
    // `sparse`: the pattern was written for a size above DenseLimit (a block that shrank in place keeps that layout).
    // A struct walked in place: a delegate over the ranges would keep the block's address in a closure on the GC heap.
    private struct Ranges(nuint from, nuint size, bool sparse)
    {
        private nuint _next = nuint.MaxValue; // MaxValue: the first range is still to come
        public nuint Lo, Hi;

        public bool Next()
        {
            if (_next == nuint.MaxValue)
            {
                (Lo, Hi) = (from, sparse ? Math.Min(size, 4096) : size);
                _next = sparse ? 4096 : size;
                return true;
            }
            if (_next >= size)
                return false;
            (Lo, Hi) = (_next, Math.Min(size, _next + 64));
            _next += 4096;
            return true;
        }
    }

    private static void Fill(byte* p, nuint from, nuint size, uint tag)
    {
        for (var r = new Ranges(from, size, size > DenseLimit); r.Next();)
        {
            nuint j = r.Lo;
            for (; j < r.Hi && (j & 7) != 0; j++)
                p[j] = PatternByte(tag, j);
            for (; j + 8 <= r.Hi; j += 8)
                *(ulong*)(p + j) = Word(tag, j >> 3);
            for (; j < r.Hi; j++)
                p[j] = PatternByte(tag, j);
        }
    }

    // The first offset whose byte differs from the pattern, or -1.
    private static long Check(byte* p, nuint from, nuint size, uint tag, bool sparse)
    {
        for (var r = new Ranges(from, size, sparse); r.Next();)
        {
            nuint j = r.Lo;
            bool bad = false;
            for (; !bad && j < r.Hi && (j & 7) != 0; j++)
                bad = p[j] != PatternByte(tag, j);
            for (; !bad && j + 8 <= r.Hi; j += 8)
                bad = *(ulong*)(p + j) != Word(tag, j >> 3);
            for (; !bad && j < r.Hi; j++)
                bad = p[j] != PatternByte(tag, j);
            if (!bad)
                continue;
            // The loops stop one step past the bad byte or word: find the first byte that differs from the word's start.
            for (nuint k = (j - 1) & ~(nuint)7; ; k++)
                if (k >= r.Lo && p[k] != PatternByte(tag, k))
                    return (long)k;
        }
        return -1;
    }

    private static bool Verify(Run r, byte* p, nuint from, nuint size, uint tag, string what, nuint writtenSize = 0)
    {
        long bad = Check(p, from, size, tag, Math.Max(size, writtenSize) > DenseLimit);
        if (bad < 0)
            return true;
        Interlocked.Increment(ref r.Corruptions);
        r.Problem($"corruption: {what} 0x{(nuint)p:x} size {size}: byte {bad} is 0x{p[bad]:x2}, expected 0x{PatternByte(tag, (nuint)bad):x2}");
        return false;
    }

    // Blocks of 16 bytes or more keep a child's address in their first word; the pattern starts after it.
    private static nuint From(nuint size) => size >= 16 ? 8u : 0u;

    // ---- workers ----

    private static void Worker(Run r, int id)
    {
        var rng = new Random(r.O.Seed * 7919 + id);
        long[] counts = r.Counts[id];
        int slots = r.O.Slots;
        try
        {
            while (!r.Stop)
            {
                if (r.Pause)
                    Park(r);
                int i = rng.Next(slots);
                if (Interlocked.CompareExchange(ref r.Locks[i], 1, 0) != 0)
                    continue;
                try
                {
                    Step(r, id, i, rng, counts);
                }
                finally
                {
                    Volatile.Write(ref r.Locks[i], 0);
                }
            }
        }
        catch (Exception e)
        {
            r.Problem($"worker {id}: {e.GetType().Name}: {e.Message.Split('\n')[0]}");
            r.Stop = true;
        }
    }

    private static void Park(Run r)
    {
        Interlocked.Increment(ref r.Parked);
        while (r.Pause && !r.Stop)
            r.Resume.Wait(100);
        Interlocked.Decrement(ref r.Parked);
    }

    private static void Step(Run r, int id, int i, Random rng, long[] counts)
    {
        int roll = rng.Next(1000);
        if (roll == 0 && rng.Next(20) == 0)
        {
            DetachAttach(r, counts);
            return;
        }
        if (roll == 1 && rng.Next(5) == 0)
        {
            MallocType t = r.Types[rng.Next(2) == 0 ? Run.Diag1 : Run.Diag2];
            t.Diagnostic = !t.Diagnostic;
            counts[(int)Op.DiagToggle]++;
            return;
        }
        switch (r.Kind[i])
        {
            case Empty:
                Allocate(r, id, i, rng, counts);
                break;
            case Block:
            {
                int k = rng.Next(100);
                if (k < 40)
                    Touch(r, i, counts);
                else if (k < 65)
                    FreeSlot(r, id, i, counts);
                else if (k < 85)
                    ReallocSlot(r, id, i, rng, counts);
                else
                    ChildOp(r, id, i, rng, counts);
                break;
            }
            case Percpu:
                if (rng.Next(100) < 70)
                    TouchPercpu(r, i, counts);
                else
                    FreeSlot(r, id, i, counts);
                break;
            case Varea:
                if (rng.Next(100) < 60)
                    TouchVmalloc(r, i, rng, counts);
                else
                    FreeSlot(r, id, i, counts);
                break;
        }
    }

    private static nuint SmallSize(Random rng)
    {
        int k = rng.Next(100);
        return k < 60 ? (nuint)rng.Next(1, 129) : k < 90 ? (nuint)rng.Next(129, 2049) : (nuint)rng.Next(2049, 32769);
    }

    private static MallocFlags FlagsFor(Run r, int id, int type, Random rng)
    {
        MallocFlags f = MallocFlags.WaitOk;
        if (type == Run.Lim)
            f = id == 0 && r.O.Threads > 1 && rng.Next(100) < 30 ? MallocFlags.WaitOk : MallocFlags.NoWait;
        else if (rng.Next(100) < 20)
            f = MallocFlags.NoWait;
        if (rng.Next(100) < 10)
            f |= MallocFlags.Zero;
        return f;
    }

    private static int SmallType(Random rng)
    {
        int k = rng.Next(100);
        return k < 30 ? Run.A : k < 55 ? Run.B : k < 65 ? Run.Diag1 : k < 75 ? Run.Diag2 : k < 90 ? Run.Lim : Run.Churn;
    }

    private static void* MallocAs(Run r, nuint size, int type, MallocFlags flags)
    {
        if (type != Run.Churn)
            return Heap.Malloc(size, r.Types[type], flags);
        r.ChurnLock.EnterReadLock();
        try
        {
            return Heap.Malloc(size, r.Types[type], flags);
        }
        finally
        {
            r.ChurnLock.ExitReadLock();
        }
    }

    private static void Allocate(Run r, int id, int i, Random rng, long[] counts)
    {
        int k = rng.Next(100);
        uint tag = (uint)rng.Next() | 1;
        if (k < 2)
        {
            nuint size = (nuint)rng.Next(1, 513);
            nuint align = (nuint)(1 << rng.Next(0, 7));
            PerCpuPtr pc = Heap.AllocPercpu(size, align, r.Types[Run.Pcpu]);
            if (((nuint)pc.Cookie & (align - 1)) != 0)
                r.Problem($"per-CPU object 0x{(nuint)pc.Cookie:x} is not aligned to {align}");
            for (int cpu = 0; cpu < PerCpuPtr.Copies; cpu++)
            {
                byte* copy = (byte*)pc.ForCpu(cpu);
                if (new ReadOnlySpan<byte>(copy, (int)size).IndexOfAnyExcept((byte)0) >= 0)
                {
                    Interlocked.Increment(ref r.Corruptions);
                    r.Problem($"corruption: per-CPU object 0x{(nuint)pc.Cookie:x} copy {cpu} is not zeroed");
                }
                Fill(copy, 0, size, tag + (uint)cpu);
            }
            Link(r, i, Percpu, (nint)pc.Cookie, size, Run.Pcpu, tag);
            counts[(int)Op.PercpuAlloc]++;
            return;
        }
        if (k < 3)
        {
            nuint size = (nuint)rng.Next(1, 65537);
            byte* a = (byte*)Heap.Vmalloc(size, r.Types[Run.Vm]);
            if (a == null)
            {
                counts[(int)Op.VmallocNull]++; // only when pages are refused (injection)
                if (r.O.FailPages == 0)
                    r.Problem("vmalloc returned null without failure injection");
                return;
            }
            Fill(a, 0, size, tag);
            Link(r, i, Varea, (nint)a, size, Run.Vm, tag);
            counts[(int)Op.Vmalloc]++;
            return;
        }
        bool large = k < 5;
        nuint sz = large ? (nuint)rng.Next(32769, 256 * 1024) : SmallSize(rng);
        int type = large ? (rng.Next(2) == 0 ? Run.LargeT : Run.A) : SmallType(rng);
        if (type == Run.Lim)
            sz = Math.Min(sz, LimitMaxSize);
        MallocFlags flags = FlagsFor(r, id, type, rng);
        byte* p = (byte*)MallocAs(r, sz, type, flags);
        if (p == null)
        {
            if ((flags & MallocFlags.NoWait) == 0)
                r.Problem($"a WaitOk malloc of {sz} bytes returned null");
            counts[(int)Op.NoWaitNull]++;
            return;
        }
        if ((flags & MallocFlags.Zero) != 0 && new ReadOnlySpan<byte>(p, (int)sz).IndexOfAnyExcept((byte)0) >= 0)
        {
            Interlocked.Increment(ref r.Corruptions);
            r.Problem($"corruption: M_ZERO block 0x{(nuint)p:x} of {sz} bytes is not zeroed");
        }
        if (sz >= 16)
            *(nint*)p = 0;
        Fill(p, From(sz), sz, tag);
        Link(r, i, Block, (nint)p, sz, type, tag);
        counts[large ? (int)Op.Large : (int)Op.Malloc]++;
    }

    private static void Link(Run r, int i, byte kind, nint p, nuint size, int type, uint tag)
    {
        r.Kind[i] = kind;
        r.Size[i] = size;
        r.Rounded[i] = kind == Block ? Heap.Roundup(size) : 0;
        r.TypeOf[i] = (byte)type;
        r.Tag[i] = tag;
        r.ChildSize[i] = 0;
        Volatile.Write(ref r.Roots[i], p);
        Volatile.Write(ref r.Linked[i], Stopwatch.GetTimestamp());
    }

    private static void Touch(Run r, int i, long[] counts)
    {
        byte* p = (byte*)r.Roots[i];
        Verify(r, p, From(r.Size[i]), r.Size[i], r.Tag[i], $"block of type {r.Types[r.TypeOf[i]].ShortDesc}");
        if (r.ChildSize[i] != 0)
            Verify(r, *(byte**)p, 0, r.ChildSize[i], r.ChildTag[i], "child block");
        counts[(int)Op.Touch]++;
    }

    private static void TouchPercpu(Run r, int i, long[] counts)
    {
        var pc = (byte*)r.Roots[i];
        for (int cpu = 0; cpu < PerCpuPtr.Copies; cpu++)
            Verify(r, pc + (nuint)cpu * PerCpuPtr.Stride, 0, r.Size[i], r.Tag[i] + (uint)cpu, "per-CPU copy");
        counts[(int)Op.Touch]++;
    }

    private static void TouchVmalloc(Run r, int i, Random rng, long[] counts)
    {
        byte* a = (byte*)r.Roots[i];
        Verify(r, a, 0, r.Size[i], r.Tag[i], "vmalloc area");
        VmArea? area = Heap.FindVmArea(a + (nuint)rng.Next((int)r.Size[i]));
        if (area is not { } v || v.Addr != a || v.RequestedSize != r.Size[i])
            r.Problem($"FindVmArea does not find the area 0x{(nuint)a:x} of {r.Size[i]} bytes");
        counts[(int)Op.Touch]++;
    }

    // Unlinks and frees what slot i holds. The objects stay referenced from this worker's in-flight words until freed.
    private static void FreeSlot(Run r, int id, int i, long[] counts)
    {
        nint p = r.Roots[i];
        nint* inFlight = r.InFlight + id * 2;
        inFlight[0] = p;
        Volatile.Write(ref r.Roots[i], 0);
        switch (r.Kind[i])
        {
            case Block:
                Verify(r, (byte*)p, From(r.Size[i]), r.Size[i], r.Tag[i], $"block of type {r.Types[r.TypeOf[i]].ShortDesc}");
                if (r.ChildSize[i] != 0)
                    FreeChild(r, id, i, (byte*)p, counts);
                Heap.Free((void*)p, r.Types[r.TypeOf[i]]);
                counts[(int)Op.Free]++;
                break;
            case Percpu:
                for (int cpu = 0; cpu < PerCpuPtr.Copies; cpu++)
                    Verify(r, (byte*)p + (nuint)cpu * PerCpuPtr.Stride, 0, r.Size[i], r.Tag[i] + (uint)cpu, "per-CPU copy");
                Heap.FreePercpu(PerCpuFromCookie(p), r.Types[Run.Pcpu]);
                counts[(int)Op.PercpuFree]++;
                break;
            case Varea:
                Verify(r, (byte*)p, 0, r.Size[i], r.Tag[i], "vmalloc area");
                Heap.Vfree((void*)p);
                counts[(int)Op.Vfree]++;
                break;
        }
        r.Kind[i] = Empty;
        inFlight[0] = 0;
    }

    // PerCpuPtr has no public constructor from a cookie; the handle is the cookie itself.
    private static PerCpuPtr PerCpuFromCookie(nint cookie) => System.Runtime.CompilerServices.Unsafe.As<nint, PerCpuPtr>(ref cookie);

    private static void FreeChild(Run r, int id, int i, byte* parent, long[] counts)
    {
        nint c = *(nint*)parent;
        r.InFlight[id * 2 + 1] = c;
        *(nint*)parent = 0;
        Verify(r, (byte*)c, 0, r.ChildSize[i], r.ChildTag[i], "child block");
        Heap.Free((void*)c, r.Types[r.ChildType[i]]);
        r.ChildSize[i] = 0;
        r.InFlight[id * 2 + 1] = 0;
        counts[(int)Op.ChildFree]++;
    }

    private static void ChildOp(Run r, int id, int i, Random rng, long[] counts)
    {
        if (r.Size[i] < 16)
        {
            Touch(r, i, counts);
            return;
        }
        byte* parent = (byte*)r.Roots[i];
        if (r.ChildSize[i] != 0)
        {
            Verify(r, *(byte**)parent, 0, r.ChildSize[i], r.ChildTag[i], "child block");
            FreeChild(r, id, i, parent, counts);
            if (rng.Next(2) == 0)
                return; // removed; otherwise replaced below
        }
        nuint size = (nuint)rng.Next(1, 513);
        int type = rng.Next(3) switch { 0 => Run.A, 1 => Run.B, _ => Run.Diag2 };
        uint tag = (uint)rng.Next() | 1;
        byte* c = (byte*)Heap.Malloc(size, r.Types[type]);
        Fill(c, 0, size, tag);
        r.ChildSize[i] = size;
        r.ChildType[i] = (byte)type;
        r.ChildTag[i] = tag;
        Volatile.Write(ref *(nint*)parent, (nint)c);
        Volatile.Write(ref r.ChildLinked[i], Stopwatch.GetTimestamp());
        counts[(int)Op.ChildAlloc]++;
    }

    private static void ReallocSlot(Run r, int id, int i, Random rng, long[] counts)
    {
        byte* p = (byte*)r.Roots[i];
        nuint old = r.Size[i];
        int type = r.TypeOf[i];
        int k = rng.Next(100);
        nuint size = k < 50 ? SmallSize(rng) : k < 55 ? (nuint)rng.Next(32769, 256 * 1024) : Math.Max(1, old / 2 + (nuint)rng.Next((int)Math.Min(old * 2, int.MaxValue / 2) + 1));
        if (type == Run.Lim)
            size = Math.Min(size, LimitMaxSize);
        if (r.ChildSize[i] != 0 && size < 16)
            size = 16; // keeps the child's word
        MallocFlags flags = FlagsFor(r, id, type, rng) & ~MallocFlags.Zero;
        nint* inFlight = r.InFlight + id * 2;
        inFlight[1] = r.ChildSize[i] != 0 ? *(nint*)p : 0; // the child stays referenced while its parent moves
        byte* q;
        if (type == Run.Churn)
        {
            r.ChurnLock.EnterReadLock();
            try
            {
                q = (byte*)Heap.Realloc(p, size, r.Types[type], flags);
            }
            finally
            {
                r.ChurnLock.ExitReadLock();
            }
        }
        else
            q = (byte*)Heap.Realloc(p, size, r.Types[type], flags);
        if (q == null)
        {
            inFlight[1] = 0;
            if ((flags & MallocFlags.NoWait) == 0)
                r.Problem($"a WaitOk realloc to {size} bytes returned null");
            counts[(int)Op.NoWaitNull]++;
            Verify(r, p, From(old), old, r.Tag[i], "block after a failed realloc");
            return;
        }
        Verify(r, q, From(old), Math.Min(old, size), r.Tag[i], "block after realloc", old);
        if (old < 16 && size >= 16)
            *(nint*)q = 0;
        Fill(q, From(size), size, r.Tag[i]);
        r.Size[i] = size;
        Volatile.Write(ref r.Roots[i], (nint)q);
        if (q != p)
        {
            r.Rounded[i] = Heap.Roundup(size);
            Volatile.Write(ref r.Linked[i], Stopwatch.GetTimestamp());
        }
        inFlight[1] = 0;
        counts[(int)Op.Realloc]++;
    }

    // Detaches the churn type (its live blocks stay valid and can be freed), checks that malloc refuses it, attaches it again.
    private static void DetachAttach(Run r, long[] counts)
    {
        MallocType t = r.Types[Run.Churn];
        r.ChurnLock.EnterWriteLock();
        try
        {
            t.Detach();
            try
            {
                Heap.Malloc(16, t);
                r.Problem("malloc under a detached type did not panic");
            }
            catch (KmemPanicException e) when (e.Message == "malloc - bogus type")
            {
            }
            t.Attach();
        }
        finally
        {
            r.ChurnLock.ExitWriteLock();
        }
        counts[(int)Op.DetachAttach]++;
    }

    // ---- the leak scanner ----

    private static void Scanner(Run r)
    {
        try
        {
            while (!r.Stop)
            {
                if (r.Pause)
                    Park(r);
                long start = Stopwatch.GetTimestamp();
                LeakScanResult result = Kmemleak.Scan();
                Interlocked.Increment(ref r.Scans);
                foreach (LeakReport leak in result.Leaks)
                {
                    Interlocked.Increment(ref r.ReportsSeen);
                    if (InStructureSince(r, leak.Address, start) is { } where)
                    {
                        Interlocked.Increment(ref r.FalseReports);
                        r.Problem($"false leak report: {leak.Kind} 0x{leak.Address:x} ({leak.Type}, {leak.Size} bytes) was {where} since before the scan");
                    }
                }
                CheckLimit(r);
                Thread.Sleep(20);
            }
        }
        catch (Exception e)
        {
            r.Problem($"scanner: {e.GetType().Name}: {e.Message.Split('\n')[0]}");
            r.Stop = true;
        }
    }

    // Where the object at `address` sits in the structure, if it was linked there before `since` (so the scan saw it
    // referenced from its start to its end); null otherwise.
    private static string? InStructureSince(Run r, nuint address, long since)
    {
        for (int i = 0; i < r.O.Slots; i++)
        {
            if ((nuint)Volatile.Read(ref r.Roots[i]) != address && r.ChildSize[i] == 0)
                continue;
            while (Interlocked.CompareExchange(ref r.Locks[i], 1, 0) != 0)
                Thread.Yield();
            try
            {
                if (r.Kind[i] == Empty)
                    continue;
                if ((nuint)r.Roots[i] == address && r.Linked[i] < since)
                    return $"in root slot {i}";
                if (r.Kind[i] == Block && r.ChildSize[i] != 0 && (nuint)(*(nint*)r.Roots[i]) == address && r.ChildLinked[i] < since && r.Linked[i] < since)
                    return $"the child of root slot {i}";
            }
            finally
            {
                Volatile.Write(ref r.Locks[i], 0);
            }
        }
        return null;
    }

    // A type with an explicit limit is charged exactly: its use exceeds the limit by one allocation at most.
    private static void CheckLimit(Run r)
    {
        MallocTypeStats s = r.Types[Run.Lim].GetStats();
        if (s.MemUse > (long)LimitBytes + LimitMaxSize && r.Types[Run.Lim].Limit == LimitBytes)
            r.Problem($"type {s.Type} uses {s.MemUse} bytes, more than one block past its limit {LimitBytes}");
    }

    // ---- checkpoints ----

    // Stops every thread between operations, then verifies the heap and the statistics.
    private static void CheckpointPaused(Run r, string when)
    {
        r.Resume.Reset();
        r.Pause = true;
        MallocType lim = r.Types[Run.Lim];
        lim.SetLimit(1UL << 40); // a WaitOk caller waiting at the limit gets through and parks
        var wait = Stopwatch.StartNew();
        while (Volatile.Read(ref r.Parked) < r.O.Threads + 1 && !r.Stop && wait.Elapsed.TotalSeconds < 60)
            Thread.Sleep(1);
        if (Volatile.Read(ref r.Parked) == r.O.Threads + 1)
            Checkpoint(r, when);
        lim.SetLimit(LimitBytes);
        r.Pause = false;
        r.Resume.Set();
    }

    // With every worker stopped: Heap.Verify is empty, and each stress type's statistics equal what the structure holds.
    private static void Checkpoint(Run r, string when)
    {
        r.VerifyRuns++;
        IReadOnlyList<string> problems = Heap.Verify();
        r.VerifyProblems += problems.Count;
        foreach (string p in problems)
            r.Problem($"Heap.Verify ({when}): {p}");
        // Nothing moves now: every object of the structure is reachable from the roots, so the scan must report none.
        LeakScanResult scan = Kmemleak.Scan();
        r.Scans++;
        foreach (LeakReport l in scan.Leaks.Where(l => r.Types.Any(t => t.ShortDesc == l.Type)))
        {
            r.ReportsSeen++;
            r.FalseReports++;
            r.Problem($"false leak report ({when}, all threads stopped): {l.Kind} 0x{l.Address:x} ({l.Type}, {l.Size} bytes)");
        }
        var blocks = new long[r.Types.Length];
        var bytes = new long[r.Types.Length];
        nuint page = (nuint)Environment.SystemPageSize;
        for (int i = 0; i < r.O.Slots; i++)
        {
            switch (r.Kind[i])
            {
                case Block:
                    blocks[r.TypeOf[i]]++;
                    bytes[r.TypeOf[i]] += (long)r.Rounded[i];
                    if (r.ChildSize[i] != 0)
                    {
                        blocks[r.ChildType[i]]++;
                        bytes[r.ChildType[i]] += (long)Heap.Roundup(r.ChildSize[i]);
                    }
                    break;
                case Percpu:
                    blocks[Run.Pcpu]++;
                    bytes[Run.Pcpu] += (long)((r.Size[i] + 15) & ~(nuint)15) * PerCpuPtr.Copies;
                    break;
                case Varea:
                    blocks[Run.Vm]++;
                    bytes[Run.Vm] += (long)((r.Size[i] + page - 1) & ~(page - 1));
                    break;
            }
        }
        for (int t = 0; t < r.Types.Length; t++)
        {
            MallocTypeStats s = r.Types[t].GetStats();
            // DIAGNOSTIC types' blocks may be redzoned (a larger class): their bytes are Verify's to check.
            bool bytesKnown = t is not (Run.Diag1 or Run.Diag2);
            if (s.InUse != blocks[t] || (bytesKnown && s.MemUse != bytes[t]))
                r.Problem($"statistics ({when}): type {s.Type} says {s.InUse} blocks, {s.MemUse} bytes; the structure holds {blocks[t]} blocks, {bytes[t]} bytes");
        }
    }

    // Frees everything (from this thread: frees from another thread than the allocating one), then every figure must be 0.
    private static void Teardown(Run r)
    {
        for (int i = 0; i < r.O.Slots; i++)
            if (r.Kind[i] != Empty)
                FreeSlot(r, 0, i, r.Counts[0]);
        foreach (MallocType t in r.Types)
            t.Diagnostic = false; // releases the quarantine
        IReadOnlyList<string> problems = Heap.Verify();
        r.VerifyRuns++;
        r.VerifyProblems += problems.Count;
        foreach (string p in problems)
            r.Problem($"Heap.Verify (after freeing everything): {p}");
        foreach (MallocType t in r.Types)
        {
            MallocTypeStats s = t.GetStats();
            if (s.InUse != 0 || s.MemUse != 0)
                r.Problem($"after freeing everything, type {s.Type} still has {s.InUse} blocks, {s.MemUse} bytes in use");
        }
        long descriptors = Heap.VmAreaType.GetStats().InUse;
        if (descriptors != r.VmAreasAtStart)
            r.Problem($"after freeing everything, {descriptors} vmalloc descriptors are in use ({r.VmAreasAtStart} before the run)");
        LeakScanResult last = Kmemleak.Scan();
        foreach (LeakReport l in last.Leaks.Where(l => r.Types.Any(t => t.ShortDesc == l.Type)))
            r.Problem($"after freeing everything, the leak scan reports 0x{l.Address:x} ({l.Type})");
        Kmemleak.Free(r.Roots);
        Kmemleak.Free(r.InFlight);
        NativeMemory.Free(r.Roots);
        NativeMemory.Free(r.InFlight);
        foreach (MallocType t in r.Types)
            t.Detach();
    }
}

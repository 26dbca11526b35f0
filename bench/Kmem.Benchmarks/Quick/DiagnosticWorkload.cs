// Quick/DiagnosticWorkload.cs — the "diagnostic" mode: what DIAGNOSTIC costs. Times the 64-byte Malloc+Free pair
// (diag-pair64) and a mixed-size workload (diag-mixed: a window of 512 live blocks of 16 to 4096 bytes, the oldest
// freed as each new one is made) with the mode off and on for the benchmark's type, repetitions alternating in one
// process (the mode switches at run time), plus the pair with NativeMemory for scale.
using System.Diagnostics;
using System.Runtime.InteropServices;
using Kmem.Benchmarks.Report;

namespace Kmem.Benchmarks.Quick;

internal static unsafe class DiagnosticWorkload
{
    public const string PairWorkload = "diag-pair64";
    public const string MixedWorkload = "diag-mixed";
    private const int Window = 512;
    private static readonly MallocType s_type = new("benchdiag", "DIAGNOSTIC benchmark");
    private static readonly int[] s_sizes = MakeSizes();
    private static nuint s_sink;

    // Sizes 16..4096 with small ones most common (as in servers' heaps): a fixed sequence, the same for both sides.
    private static int[] MakeSizes()
    {
        var rng = new Random(12345);
        var sizes = new int[1 << 16];
        for (int i = 0; i < sizes.Length; i++)
            sizes[i] = rng.Next(4) == 0 ? rng.Next(512, 4097) : rng.Next(16, 257);
        return sizes;
    }

    public static List<BenchRun> Run(int repetitions, int pairs)
    {
        Console.WriteLine($"DIAGNOSTIC off vs on (type '{s_type.ShortDesc}', poison of 32 bytes, redzones, quarantine of"
            + $" {KmemOptions.QuarantineBlocks} blocks, MALLOCLOG of {KmemOptions.MallocLogEntries:N0} entries); "
            + $"{repetitions} repetitions x {pairs:N0} operations, alternating; median ns per pair");
        int mixedOps = pairs / 4;
        var runs = new List<BenchRun>();
        foreach ((string workload, Func<int, nuint> body, int ops) in new (string, Func<int, nuint>, int)[]
                 { (PairWorkload, Pair, pairs), (MixedWorkload, Mixed, mixedOps) })
        {
            var off = new List<double>();
            var on = new List<double>();
            s_type.Diagnostic = true;
            s_sink += body(Math.Max(1000, ops / 10)); // warm both paths
            s_type.Diagnostic = false;
            s_sink += body(Math.Max(1000, ops / 10));
            for (int rep = 0; rep < repetitions; rep++)
            {
                bool onFirst = rep % 2 == 1;
                for (int side = 0; side < 2; side++)
                {
                    bool diag = (side == 0) == onFirst;
                    s_type.Diagnostic = diag;
                    long t0 = Stopwatch.GetTimestamp();
                    s_sink += body(ops);
                    double ns = Stopwatch.GetElapsedTime(t0).TotalNanoseconds / ops;
                    (diag ? on : off).Add(ns);
                }
            }
            s_type.Diagnostic = false;
            double mOff = Median(off), mOn = Median(on);
            Console.WriteLine($"  {workload,-12} off {mOff,8:F1} ns [{off.Min():F1}-{off.Max():F1}]   on {mOn,8:F1} ns"
                + $" [{on.Min():F1}-{on.Max():F1}]   on/off {mOn / mOff:F2}");
            runs.Add(new BenchRun(workload, "kmem", Math.Round(mOff, 2), "ns"));
            runs.Add(new BenchRun(workload, "kmem-diagnostic", Math.Round(mOn, 2), "ns"));
        }
        var native = new List<double>();
        for (int rep = 0; rep < repetitions; rep++)
        {
            long t0 = Stopwatch.GetTimestamp();
            s_sink += NativePair(pairs);
            native.Add(Stopwatch.GetElapsedTime(t0).TotalNanoseconds / pairs);
        }
        Console.WriteLine($"  {PairWorkload,-12} nativememory {Median(native):F1} ns (for scale)");
        runs.Add(new BenchRun(PairWorkload, "nativememory", Math.Round(Median(native), 2), "ns"));
        GC.KeepAlive(s_sink);
        return runs;
    }

    private static double Median(List<double> xs)
    {
        var s = xs.Order().ToList();
        return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }

    private static nuint Pair(int n)
    {
        nuint sum = 0;
        for (int i = 0; i < n; i++)
        {
            void* p = Heap.Malloc(64, s_type);
            *(byte*)p = 1;
            sum += (nuint)p;
            Heap.Free(p, s_type);
        }
        return sum;
    }

    private static nuint NativePair(int n)
    {
        nuint sum = 0;
        for (int i = 0; i < n; i++)
        {
            void* p = NativeMemory.Alloc(64);
            *(byte*)p = 1;
            sum += (nuint)p;
            NativeMemory.Free(p);
        }
        return sum;
    }

    private static nuint Mixed(int n)
    {
        var window = stackalloc nint[Window];
        nuint sum = 0;
        for (int i = 0; i < Window; i++)
            window[i] = (nint)Heap.Malloc((nuint)s_sizes[i], s_type);
        for (int i = 0; i < n; i++)
        {
            int slot = i & (Window - 1);
            Heap.Free((void*)window[slot], s_type);
            int size = s_sizes[(i + Window) & (s_sizes.Length - 1)];
            byte* p = (byte*)Heap.Malloc((nuint)size, s_type);
            p[0] = 1;
            p[size - 1] = 1;
            sum += (nuint)p;
            window[slot] = (nint)p;
        }
        for (int i = 0; i < Window; i++)
            Heap.Free((void*)window[i], s_type);
        return sum;
    }
}

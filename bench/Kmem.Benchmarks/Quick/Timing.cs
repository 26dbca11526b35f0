// Quick/Timing.cs — the hand-written harness's timing primitives: the warm-up of one loop, one timed repetition in ns
// per operation, medians, and the checksum sink that keeps the JIT from dropping timed work.
using System.Diagnostics;

namespace Kmem.Benchmarks.Quick;

internal static class Timing
{
    private const int ChunkUnit = 1000;
    private static readonly TimeSpan s_warmup = TimeSpan.FromMilliseconds(150);

    /// <summary>Every checksum is added here so the JIT cannot drop the work that produced it.</summary>
    public static nuint Sink;

    /// <summary>
    /// Runs <paramref name="loop"/> in chunks of about a fortieth of <paramref name="ops"/>, two passes of at least
    /// 150 ms and 40 chunks each, so the loop and the allocator's own code reach tier-1 code and its caches are filled.
    /// </summary>
    public static void WarmUp(Func<int, nuint> loop, int ops)
    {
        int chunk = Math.Max(4 * ChunkUnit, ops / 40 / ChunkUnit * ChunkUnit);
        long budget = (long)(s_warmup.TotalSeconds * Stopwatch.Frequency);
        for (int pass = 0; pass < 2; pass++)
        {
            long start = Stopwatch.GetTimestamp();
            int calls = 0;
            while (calls < 40 || Stopwatch.GetTimestamp() - start < budget)
            {
                Sink += loop(chunk);
                calls++;
            }
        }
    }

    /// <summary>One timed repetition: ns per operation.</summary>
    public static double TimeOnce(Func<int, nuint> loop, int ops)
    {
        long start = Stopwatch.GetTimestamp();
        Sink += loop(ops);
        long elapsed = Stopwatch.GetTimestamp() - start;
        return elapsed * 1e9 / Stopwatch.Frequency / ops;
    }

    public static double Median(IReadOnlyCollection<double> samples)
    {
        double[] sorted = [.. samples.Order()];
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}

// Telemetry/KmemMetrics.cs — the Meter "Kmem": per-type instruments tagged kmem.type (read from the folded type
// statistics when a listener collects) and the leak detector's suspected-object count and scan durations.
// OpenTelemetry and dotnet-counters read these unchanged. Created once for the process. The six per-type instruments of
// one collection share one fold of the statistics.
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Kmem.Telemetry;

internal static class KmemMetrics
{
    public const string MeterName = "Kmem";
    public const string TypeTag = "kmem.type";

    private static readonly Meter s_meter = new(MeterName, typeof(KmemMetrics).Assembly.GetName().Version?.ToString());
    // A collection calls the per-type instruments one after another. An instrument that has not read the last fold yet,
    // within this long of it, is part of the same collection and reads it too; one that has read it starts a new fold.
    internal static long FoldReuseTicks = Stopwatch.Frequency / 10; // 100 ms (tests set it longer)
    private static readonly object s_foldLock = new();
    private static IReadOnlyList<MallocTypeStats>? s_lastFold;
    private static long s_lastFoldAt;
    private static int s_foldReadBy; // a bit for each per-type instrument that has read s_lastFold
    private static long s_suspected;

    private static readonly Histogram<double> s_scanDuration;
    private static readonly Counter<long> s_poolLeaked;

    /// <summary>How many times the instruments folded the type statistics (for tests).</summary>
    internal static long Folds;

    static KmemMetrics()
    {
        s_meter.CreateObservableUpDownCounter("kmem.type.memory.usage", () => PerType(0, s => s.MemUse), "By",
            "Bytes in use by the malloc type (rounded sizes)");
        s_meter.CreateObservableGauge("kmem.type.memory.high_use", () => PerType(1, s => s.HighUse), "By",
            "The most bytes the malloc type has held");
        s_meter.CreateObservableGauge("kmem.type.memory.limit", () => PerType(2, s => s.Limit > long.MaxValue ? long.MaxValue : (long)s.Limit), "By",
            "The malloc type's limit");
        s_meter.CreateObservableUpDownCounter("kmem.type.in_use", () => PerType(3, s => s.InUse), "{allocation}",
            "Blocks the malloc type holds");
        s_meter.CreateObservableCounter("kmem.type.requests", () => PerType(4, s => s.Requests), "{request}",
            "Allocations made under the malloc type");
        s_meter.CreateObservableCounter("kmem.type.limit_blocks", () => PerType(5, s => s.LimitBlocks), "{request}",
            "Times a caller met the malloc type's limit");
        s_meter.CreateObservableUpDownCounter("kmem.leak.suspected", () => Volatile.Read(ref s_suspected), "{object}",
            "Objects the last leak scan reported as unreferenced");
        s_scanDuration = s_meter.CreateHistogram<double>("kmem.leak.scan.duration", "s", "Duration of leak scans");
        s_poolLeaked = s_meter.CreateCounter<long>("kmem.pool.leaked", "{block}", "Memory-pool blocks collected without Dispose");
    }

    /// <summary>Makes sure the instruments exist (listeners see a meter only once it is created).</summary>
    public static void EnsureCreated() => _ = s_meter;

    public static void ScanCompleted(LeakScanResult result)
    {
        Volatile.Write(ref s_suspected, result.LeakCount); // the count only: the reports are made when someone reads them
        s_scanDuration.Record(result.Stats.Duration.TotalSeconds);
    }

    public static void PoolLeaked() => s_poolLeaked.Add(1);

    /// <summary>Drops the last fold, so the next instrument read folds (for tests).</summary>
    internal static void ForgetFold()
    {
        lock (s_foldLock)
            s_lastFold = null;
    }

    private static IEnumerable<Measurement<long>> PerType(int instrument, Func<MallocTypeStats, long> value)
    {
        foreach (MallocTypeStats s in CollectionFold(instrument))
            yield return new Measurement<long>(value(s), new KeyValuePair<string, object?>(TypeTag, s.Type));
    }

    // The type statistics for this collection: folded by its first per-type instrument, read by the others (a fold
    // takes the caches' lock and visits every thread's slot of every type, 0.3-0.5 ms for 1000 types).
    private static IReadOnlyList<MallocTypeStats> CollectionFold(int instrument)
    {
        int bit = 1 << instrument;
        lock (s_foldLock)
        {
            if (s_lastFold is null || (s_foldReadBy & bit) != 0 || Stopwatch.GetTimestamp() - s_lastFoldAt >= Volatile.Read(ref FoldReuseTicks))
            {
                s_lastFold = Heap.TypeStats();
                s_lastFoldAt = Stopwatch.GetTimestamp();
                s_foldReadBy = 0;
                Folds++;
            }
            s_foldReadBy |= bit;
            return s_lastFold;
        }
    }
}

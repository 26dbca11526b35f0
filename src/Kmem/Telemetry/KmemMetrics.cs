// Telemetry/KmemMetrics.cs — the Meter "Kmem": per-type instruments tagged kmem.type (read from the folded type
// statistics when a listener collects) and the leak detector's suspected-object count and scan durations.
// OpenTelemetry and dotnet-counters read these unchanged. Created once for the process.
using System.Diagnostics.Metrics;

namespace Kmem.Telemetry;

internal static class KmemMetrics
{
    public const string MeterName = "Kmem";
    public const string TypeTag = "kmem.type";

    private static readonly Meter s_meter = new(MeterName, typeof(KmemMetrics).Assembly.GetName().Version?.ToString());
    private static long s_suspected;
    private static readonly Histogram<double> s_scanDuration;
    private static readonly Counter<long> s_poolLeaked;

    static KmemMetrics()
    {
        s_meter.CreateObservableUpDownCounter("kmem.type.memory.usage", () => PerType(s => s.MemUse), "By",
            "Bytes in use by the malloc type (rounded sizes)");
        s_meter.CreateObservableGauge("kmem.type.memory.high_use", () => PerType(s => s.HighUse), "By",
            "The most bytes the malloc type has held");
        s_meter.CreateObservableGauge("kmem.type.memory.limit", () => PerType(s => s.Limit > long.MaxValue ? long.MaxValue : (long)s.Limit), "By",
            "The malloc type's limit");
        s_meter.CreateObservableUpDownCounter("kmem.type.in_use", () => PerType(s => s.InUse), "{allocation}",
            "Blocks the malloc type holds");
        s_meter.CreateObservableCounter("kmem.type.requests", () => PerType(s => s.Requests), "{request}",
            "Allocations made under the malloc type");
        s_meter.CreateObservableCounter("kmem.type.limit_blocks", () => PerType(s => s.LimitBlocks), "{request}",
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

    private static IEnumerable<Measurement<long>> PerType(Func<MallocTypeStats, long> value)
    {
        foreach (MallocTypeStats s in Heap.TypeStats())
            yield return new Measurement<long>(value(s), new KeyValuePair<string, object?>(TypeTag, s.Type));
    }
}

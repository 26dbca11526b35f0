// Telemetry/KmemTelemetry.cs — the one door the rest of the library uses to report to metrics and events: scan
// results, console messages, types destroyed with live blocks, pool blocks never disposed. Cheap when nobody listens.
using System.Diagnostics.Tracing;

namespace Kmem.Telemetry;

internal static class KmemTelemetry
{
    private static long s_poolLeaks;

    /// <summary>Memory-pool owners collected without Dispose, ever.</summary>
    public static long PoolLeaks => Volatile.Read(ref s_poolLeaks);

    public static void ScanCompleted(LeakScanResult result)
    {
        KmemMetrics.ScanCompleted(result);
        KmemEventSource log = KmemEventSource.Log;
        if (!log.IsEnabled(EventLevel.Warning, KmemEventSource.Keywords.Leaks))
            return;
        foreach (LeakReport l in result.NewLeaks)
            log.SuspectedLeak($"0x{l.Address:x}", (long)l.Size, l.Type, l.Site, l.Direct ? 1 : 0, "");
        log.LeakScanCompleted(result.NewLeaks.Count, result.LeakCount, result.Stats.Duration.TotalMilliseconds, result.Stats.Objects);
    }

    public static void Message(KmemMessageKind kind, string text)
    {
        KmemEventSource log = KmemEventSource.Log;
        if (log.IsEnabled(EventLevel.Warning, KmemEventSource.Keywords.Messages))
            log.Message((int)kind, text);
    }

    public static void TypeLeakedOnDestroy(string type, long inUse, long memUse)
    {
        KmemEventSource log = KmemEventSource.Log;
        if (log.IsEnabled(EventLevel.Warning, KmemEventSource.Keywords.Messages))
            log.TypeLeakedOnDestroy(type, inUse, memUse);
    }

    public static void PoolLeak(string type, long size, string site)
    {
        Interlocked.Increment(ref s_poolLeaks);
        KmemMetrics.PoolLeaked();
        KmemEventSource log = KmemEventSource.Log;
        if (log.IsEnabled(EventLevel.Warning, KmemEventSource.Keywords.Leaks))
            log.PoolLeak(type, size, site);
    }
}

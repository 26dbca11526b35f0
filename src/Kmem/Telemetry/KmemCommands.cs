// Telemetry/KmemCommands.cs — what a command that arrives through the EventSource does: `stat` (vmstat -m, plus a
// TypeStat event per type), `leaks` (the grouped summary and Kmemleak.Read(), plus a SuspectedLeak event per object),
// `scan` (a scan now, its summary), `verify` (Heap.Verify: a summary line, then each problem found) and every kmemleak command.
namespace Kmem.Telemetry;

internal static class KmemCommands
{
    /// <summary>Runs <paramref name="command"/>; status 0 and the reply text, or status 1 and the error in one line.</summary>
    public static (int Status, string Text) Run(string command, string requestId)
    {
        try
        {
            switch (command)
            {
                case "stat":
                    // Names need not be unique (as in NetBSD): each row carries the type's index too.
                    foreach (MallocType type in Types.TypeRegistry.AttachedSnapshot())
                    {
                        MallocTypeStats s = type.GetStats();
                        KmemEventSource.Log.TypeStat(requestId, s.Type, type.Index, s.InUse, s.MemUse, s.HighUse,
                            s.Limit > long.MaxValue ? long.MaxValue : (long)s.Limit, s.Requests, s.LimitBlocks);
                    }
                    return (0, Heap.FormatVmstat());
                case "leaks":
                {
                    (LeakScanResult last, var pool, string report) = Kmemleak.Snapshot();
                    foreach (LeakReport l in last.Leaks)
                        KmemEventSource.Log.SuspectedLeak($"0x{l.Address:x}", (long)l.Size, l.Type, l.Site, l.Direct ? 1 : 0, requestId);
                    foreach (var p in pool)
                        KmemEventSource.Log.SuspectedLeak(p.Address, p.Size, p.Type, p.Site, 1, requestId);
                    if (last.Leaks.Count == 0 && pool.Count == 0)
                        return (0, "no suspected leaks\n");
                    string summary = last.Leaks.Count == 0 ? "" : last.Summary();
                    if (pool.Count > 0)
                        summary += $"{pool.Count} memory pool buffer(s) collected without Dispose (listed below).\n";
                    return (0, summary + "\n" + report);
                }
                case "scan":
                    return (0, Kmemleak.Scan().Summary());
                case "verify":
                {
                    Diagnostics.HeapVerifier.Result r = Diagnostics.HeapVerifier.Run();
                    return (0, string.Concat(r.Problems.Select(p => "\n  " + p).Prepend(r.Summary)));
                }
                default:
                    return (0, Kmemleak.Write(command));
            }
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or KmemPanicException)
        {
            string message = e is ArgumentException { ParamName: { } name } ? e.Message.Replace($" (Parameter '{name}')", "") : e.Message;
            return (1, message.Split('\n')[0]);
        }
        catch (Exception e)
        {
            // A command must never take its process down (a message handler that throws, no memory): say what failed.
            return (1, $"{e.GetType().Name}: {e.Message.Split('\n')[0]}");
        }
    }
}

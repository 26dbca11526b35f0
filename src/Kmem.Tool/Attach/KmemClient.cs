// Attach/KmemClient.cs — runs one command in a target process through EventPipe: a session enables the target's
// "Kmem" EventSource with Command/RequestId arguments, and the reply comes back as events carrying the id (reply text
// in parts, a row per type for `stat`, a row per object for `leaks`). The target's heartbeat keeps the stream
// flowing; the session is stopped once the reply is complete (or after the timeout), which drains what is left.
using System.Diagnostics.Tracing;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Tracing;

namespace Kmem.Tool.Attach;

internal sealed record TypeRow(string Type, int Index, long InUse, long MemUse, long HighUse, long Limit, long Requests, long LimitBlocks);

internal sealed record LeakRow(string Address, long Size, string Type, string Site, bool Direct);

internal sealed record Reply(int Status, string Text, List<TypeRow> Types, List<LeakRow> Leaks);

internal static class KmemClient
{
    /// <summary>How long a process may take to show any sign of Kmem (its heartbeat comes every 200 ms).</summary>
    private static readonly TimeSpan s_probe = TimeSpan.FromSeconds(5);

    public static Reply Run(int pid, string command, TimeSpan timeout, CancellationToken cancel = default)
    {
        string id = Guid.NewGuid().ToString("N")[..16];
        var provider = new EventPipeProvider("Kmem", EventLevel.Verbose, -1,
            new Dictionary<string, string> { ["Command"] = command, ["RequestId"] = id });
        EventPipeSession session;
        try
        {
            session = new DiagnosticsClient(pid).StartEventPipeSession(new[] { provider }, requestRundown: false, circularBufferMB: 64);
        }
        catch (Exception e) when (e is DiagnosticsClientException or IOException or UnauthorizedAccessException or TimeoutException)
        {
            throw new ToolException($"cannot attach to process {pid}: {e.Message}");
        }
        var parts = new SortedDictionary<int, string>();
        int expected = -1, status = 0;
        var types = new List<TypeRow>();
        var leaks = new List<LeakRow>();
        Exception? unreadable = null;
        using var sawKmem = new ManualResetEventSlim();
        using var complete = new ManualResetEventSlim();
        using var streamEnded = new ManualResetEventSlim();
        Task processing = Task.CompletedTask;
        try
        {
            var source = new EventPipeEventSource(session.EventStream);
            source.Dynamic.All += e =>
            {
                if (e.ProviderName != "Kmem")
                    return;
                sawKmem.Set();
                try
                {
                    Collect(e);
                }
                catch (Exception x) when (x is InvalidCastException or NullReferenceException)
                {
                    unreadable ??= x; // a reply this tool cannot read (another Kmem version)
                    complete.Set();
                }
            };
            processing = Task.Run(() =>
            {
                try
                {
                    source.Process();
                }
                catch (Exception)
                {
                    // the stream ends when the session stops or the process exits
                }
                finally
                {
                    source.Dispose();
                    streamEnded.Set();
                }
            });
            var deadline = DateTime.UtcNow + timeout;
            if (WaitHandle.WaitAny(new[] { sawKmem.WaitHandle, complete.WaitHandle, streamEnded.WaitHandle, cancel.WaitHandle },
                    timeout < s_probe ? timeout : s_probe) == WaitHandle.WaitTimeout)
                throw new ToolException($"process {pid} has not loaded Kmem (no event from its Kmem source within {s_probe.TotalSeconds:F0} s)");
            TimeSpan left = deadline - DateTime.UtcNow;
            WaitHandle.WaitAny(new[] { complete.WaitHandle, streamEnded.WaitHandle, cancel.WaitHandle }, left > TimeSpan.Zero ? left : TimeSpan.Zero);
        }
        finally
        {
            try
            {
                session.Stop();
            }
            catch (Exception e) when (e is DiagnosticsClientException or IOException or TimeoutException or ObjectDisposedException)
            {
                // the process may have exited
            }
            processing.Wait(TimeSpan.FromSeconds(10));
            session.Dispose();
        }
        cancel.ThrowIfCancellationRequested();
        if (unreadable is not null)
            throw new ToolException($"process {pid} sent a reply this tool cannot read ({unreadable.Message}); is its Kmem another version?");
        if (!complete.IsSet && !(expected > 0 && parts.Count == expected))
        {
            if (!Directory.Exists($"/proc/{pid}"))
                throw new ToolException($"process {pid} exited before it answered '{command}'");
            throw new ToolException($"process {pid} did not answer '{command}' within {timeout.TotalSeconds:F0} s");
        }
        return new Reply(status, string.Concat(parts.Values), types, leaks);

        void Collect(TraceEvent e)
        {
            switch (e.EventName)
            {
                case "CommandReply" when (string)e.PayloadByName("RequestId") == id:
                    status = (int)e.PayloadByName("Status");
                    expected = (int)e.PayloadByName("Parts");
                    parts[(int)e.PayloadByName("Part")] = (string)e.PayloadByName("Text");
                    if (parts.Count == expected)
                        complete.Set();
                    break;
                case "TypeStat" when (string)e.PayloadByName("RequestId") == id:
                    types.Add(new TypeRow((string)e.PayloadByName("Type"), (int)e.PayloadByName("TypeIndex"), (long)e.PayloadByName("InUse"),
                        (long)e.PayloadByName("MemUse"), (long)e.PayloadByName("HighUse"), (long)e.PayloadByName("Limit"),
                        (long)e.PayloadByName("Requests"), (long)e.PayloadByName("LimitBlocks")));
                    break;
                case "SuspectedLeak" when (string)e.PayloadByName("RequestId") == id:
                    leaks.Add(new LeakRow((string)e.PayloadByName("Address"), (long)e.PayloadByName("Size"), (string)e.PayloadByName("Type"),
                        (string)e.PayloadByName("Site"), (int)e.PayloadByName("Direct") != 0));
                    break;
            }
        }
    }
}

// Telemetry/KmemEventSource.cs — the EventSource "Kmem": events for leak scans and suspected leaks, DIAGNOSTIC and other
// console messages, types destroyed with live blocks, memory-pool owners never disposed; and the command channel:
// a session that enables the source with arguments Command=<cmd>;RequestId=<id> gets the command run off the
// callback thread and its reply as CommandReply events carrying the id. While any session is on, a Heartbeat event
// goes out every 200 ms, so a live EventPipe session flushes replies promptly. Payloads are primitives and strings
// (addresses as hex text, so an event buffer never holds a word that points at a block).
using System.Diagnostics.CodeAnalysis;
using System.Diagnostics.Tracing;

namespace Kmem.Telemetry;

[EventSource(Name = SourceName)]
[UnconditionalSuppressMessage("ReflectionAnalysis", "IL2026", Justification = "Every payload is a primitive or a string (WriteEventCore).")]
internal sealed unsafe class KmemEventSource : EventSource
{
    public const string SourceName = "Kmem";
    public static readonly KmemEventSource Log = new();

    private const int ReplyChunk = 16_000;
    private readonly object _lock = new();
    private readonly Queue<string> _seenRequests = new();
    private Timer? _heartbeat;
    private long _beat;
    private long _requestsAccepted;

    /// <summary>Requests accepted so far (each id once); counted on the enabling thread, before the work is queued.</summary>
    internal long RequestsAccepted => Interlocked.Read(ref _requestsAccepted);

    public static class Keywords
    {
        public const EventKeywords Leaks = (EventKeywords)1;
        public const EventKeywords Messages = (EventKeywords)2;
        public const EventKeywords Commands = (EventKeywords)4;
    }

    private KmemEventSource() { }

    /// <summary>Creates the source (first use of Kmem does), so sessions of tools find it.</summary>
    public static void EnsureCreated() => _ = Log;

    // ---- events ----

    [Event(1, Level = EventLevel.Informational, Keywords = Keywords.Leaks, Message = "kmemleak scan: {0} new, {1} suspected, {2} ms")]
    public void LeakScanCompleted(long NewLeaks, long Leaks, double DurationMs, long Objects)
    {
        EventData* d = stackalloc EventData[4];
        Set(d, 0, &NewLeaks);
        Set(d, 1, &Leaks);
        Set(d, 2, &DurationMs);
        Set(d, 3, &Objects);
        WriteEventCore(1, 4, d);
    }

    [Event(2, Level = EventLevel.Warning, Keywords = Keywords.Leaks, Message = "unreferenced object {0} (size {1}), type {2}, allocated at {3}")]
    public void SuspectedLeak(string Address, long Size, string Type, string Site, int Direct, string RequestId)
    {
        fixed (char* a = Address, t = Type, s = Site, r = RequestId)
        {
            EventData* d = stackalloc EventData[6];
            Set(d, 0, a, Address);
            Set(d, 1, &Size);
            Set(d, 2, t, Type);
            Set(d, 3, s, Site);
            Set(d, 4, &Direct);
            Set(d, 5, r, RequestId);
            WriteEventCore(2, 6, d);
        }
    }

    [Event(3, Level = EventLevel.Warning, Keywords = Keywords.Messages, Message = "{1}")]
    public void Message(int Kind, string Text)
    {
        fixed (char* t = Text)
        {
            EventData* d = stackalloc EventData[2];
            Set(d, 0, &Kind);
            Set(d, 1, t, Text);
            WriteEventCore(3, 2, d);
        }
    }

    [Event(4, Level = EventLevel.Warning, Keywords = Keywords.Messages, Message = "memory type {0} leaked memory on destroy ({1} allocations, {2} bytes)")]
    public void TypeLeakedOnDestroy(string Type, long InUse, long MemUse)
    {
        fixed (char* t = Type)
        {
            EventData* d = stackalloc EventData[3];
            Set(d, 0, t, Type);
            Set(d, 1, &InUse);
            Set(d, 2, &MemUse);
            WriteEventCore(4, 3, d);
        }
    }

    [Event(5, Level = EventLevel.Informational, Keywords = Keywords.Commands)]
    public void CommandReply(string RequestId, string Command, int Status, int Part, int Parts, string Text)
    {
        fixed (char* r = RequestId, c = Command, t = Text)
        {
            EventData* d = stackalloc EventData[6];
            Set(d, 0, r, RequestId);
            Set(d, 1, c, Command);
            Set(d, 2, &Status);
            Set(d, 3, &Part);
            Set(d, 4, &Parts);
            Set(d, 5, t, Text);
            WriteEventCore(5, 6, d);
        }
    }

    [Event(6, Level = EventLevel.Informational, Keywords = Keywords.Commands)]
    public void TypeStat(string RequestId, string Type, int TypeIndex, long InUse, long MemUse, long HighUse, long Limit, long Requests, long LimitBlocks)
    {
        fixed (char* r = RequestId, t = Type)
        {
            EventData* d = stackalloc EventData[9];
            Set(d, 0, r, RequestId);
            Set(d, 1, t, Type);
            Set(d, 2, &TypeIndex);
            Set(d, 3, &InUse);
            Set(d, 4, &MemUse);
            Set(d, 5, &HighUse);
            Set(d, 6, &Limit);
            Set(d, 7, &Requests);
            Set(d, 8, &LimitBlocks);
            WriteEventCore(6, 9, d);
        }
    }

    [Event(7, Level = EventLevel.Informational, Keywords = Keywords.Commands)]
    public void Heartbeat(long Sequence)
    {
        EventData* d = stackalloc EventData[1];
        Set(d, 0, &Sequence);
        WriteEventCore(7, 1, d);
    }

    [Event(8, Level = EventLevel.Warning, Keywords = Keywords.Leaks, Message = "memory pool block of type {0} ({1} bytes) collected without Dispose; allocated at {2}")]
    public void PoolLeak(string Type, long Size, string Site)
    {
        fixed (char* t = Type, s = Site)
        {
            EventData* d = stackalloc EventData[3];
            Set(d, 0, t, Type);
            Set(d, 1, &Size);
            Set(d, 2, s, Site);
            WriteEventCore(8, 3, d);
        }
    }

    // Whole-struct assignments: the descriptor's reserved field is zero.
    private static void Set<T>(EventData* d, int i, T* value) where T : unmanaged =>
        d[i] = new EventData { DataPointer = (nint)value, Size = sizeof(T) };

    private static void Set(EventData* d, int i, char* text, string value) =>
        d[i] = new EventData { DataPointer = (nint)text, Size = (value.Length + 1) * 2 };

    // ---- the command channel ----

    protected override void OnEventCommand(EventCommandEventArgs command)
    {
        if (command.Command is not (EventCommand.Enable or EventCommand.Update))
            return;
        StartHeartbeat();
        if (command.Arguments is null || !command.Arguments.TryGetValue("Command", out string? text) || string.IsNullOrWhiteSpace(text))
            return;
        command.Arguments.TryGetValue("RequestId", out string? id);
        id ??= "";
        // The callback runs again for every session that enables the source: run each request once.
        lock (_lock)
        {
            if (id.Length > 0)
            {
                if (_seenRequests.Contains(id))
                    return;
                _seenRequests.Enqueue(id);
                if (_seenRequests.Count > 256)
                    _seenRequests.Dequeue();
            }
        }
        Interlocked.Increment(ref _requestsAccepted);
        // The callback holds the EventSource's lock on the enabling thread: run the command elsewhere.
        var work = (Source: this, Command: text.Trim(), Id: id);
        ThreadPool.UnsafeQueueUserWorkItem(static w => w.Source.Execute(w.Command, w.Id), work, preferLocal: false);
    }

    private void Execute(string command, string id)
    {
        int status;
        string text;
        try
        {
            (status, text) = KmemCommands.Run(command, id);
        }
        catch (Exception e)
        {
            (status, text) = (1, $"{e.GetType().Name}: {e.Message.Split('\n')[0]}"); // never an unhandled exception
        }
        int parts = Math.Max(1, (text.Length + ReplyChunk - 1) / ReplyChunk);
        for (int i = 0; i < parts; i++)
        {
            int start = i * ReplyChunk;
            CommandReply(id, command, status, i, parts, text.Substring(start, Math.Min(ReplyChunk, text.Length - start)));
        }
    }

    private void StartHeartbeat()
    {
        if (!IsEnabled(EventLevel.Informational, Keywords.Commands))
            return; // only sessions that can send commands need the flush
        lock (_lock)
            _heartbeat ??= new Timer(static s => ((KmemEventSource)s!).Beat(), this, 200, 200);
    }

    private void Beat()
    {
        if (IsEnabled(EventLevel.Informational, Keywords.Commands))
        {
            Heartbeat(Interlocked.Increment(ref _beat));
            return;
        }
        lock (_lock)
        {
            // Checked again under the lock: a session that started meanwhile keeps the timer (its OnEventCommand found it).
            if (IsEnabled(EventLevel.Informational, Keywords.Commands))
                return;
            _heartbeat?.Dispose();
            _heartbeat = null;
        }
    }
}

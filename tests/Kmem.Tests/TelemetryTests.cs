// TelemetryTests.cs — the Meter "Kmem" reports each type's statistics under the kmem.type tag; the EventSource "Kmem"
// runs commands given as Command/RequestId arguments and answers with events carrying the id; leak scans and
// DIAGNOSTIC messages become events; KmemMemoryPool serves System.IO.Pipelines and reports owners never disposed.
using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Diagnostics.Tracing;
using System.IO.Pipelines;
using Kmem.Pools;
using Xunit;

namespace Kmem.Tests;

[Collection(KmemleakCollection.Name)]
public sealed class TelemetryTests
{
    public TelemetryTests() => Leaks.Reset();

    [Fact]
    public unsafe void The_meter_reports_every_types_statistics_tagged_with_its_name()
    {
        var t = Types.New(limit: 1 << 20);
        void* a = Heap.Malloc(100, t), b = Heap.Malloc(5000, t);
        var seen = new Dictionary<string, long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) =>
        {
            if (i.Meter.Name == "Kmem")
                l.EnableMeasurementEvents(i);
        };
        listener.SetMeasurementEventCallback<long>((i, value, tags, _) =>
        {
            foreach (var tag in tags)
                if (tag.Key == "kmem.type" && (string?)tag.Value == t.ShortDesc)
                    seen[i.Name + " " + i.Unit] = value;
        });
        listener.Start();
        listener.RecordObservableInstruments();
        MallocTypeStats s = t.GetStats();
        Assert.Equal(s.MemUse, seen["kmem.type.memory.usage By"]);
        Assert.Equal(2, seen["kmem.type.in_use {allocation}"]);
        Assert.Equal(2, seen["kmem.type.requests {request}"]);
        Assert.Equal(1 << 20, seen["kmem.type.memory.limit By"]);
        Assert.Equal(s.HighUse, seen["kmem.type.memory.high_use By"]);
        Assert.Equal(0, seen["kmem.type.limit_blocks {request}"]);
        Heap.Free(a, t);
        Heap.Free(b, t);
    }

    [Fact]
    public unsafe void A_collection_folds_the_type_statistics_once_and_the_next_one_sees_what_changed()
    {
        var t = Types.New();
        void* a = Heap.Malloc(100, t);
        long inUse = -1;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) =>
        {
            if (i.Meter.Name == "Kmem" && i.Name.StartsWith("kmem.type", StringComparison.Ordinal))
                l.EnableMeasurementEvents(i);
        };
        listener.SetMeasurementEventCallback<long>((i, value, tags, _) =>
        {
            foreach (var tag in tags)
                if (i.Name == "kmem.type.in_use" && tag.Key == "kmem.type" && (string?)tag.Value == t.ShortDesc)
                    inUse = value;
        });
        listener.Start();
        long reuse = Kmem.Telemetry.KmemMetrics.FoldReuseTicks;
        Kmem.Telemetry.KmemMetrics.FoldReuseTicks = long.MaxValue; // a stall between two instruments must not count
        Kmem.Telemetry.KmemMetrics.ForgetFold(); // nor a fold left by an earlier test
        try
        {
            long folds = Kmem.Telemetry.KmemMetrics.Folds;
            listener.RecordObservableInstruments(); // six per-type instruments
            Assert.Equal(1, Kmem.Telemetry.KmemMetrics.Folds - folds);
            Assert.Equal(1, inUse);
            void* b = Heap.Malloc(100, t);
            listener.RecordObservableInstruments(); // at once: a new collection, which does not reuse the last one's fold
            Assert.Equal(2, Kmem.Telemetry.KmemMetrics.Folds - folds);
            Assert.Equal(2, inUse);
            Heap.Free(b, t);
        }
        finally
        {
            Kmem.Telemetry.KmemMetrics.FoldReuseTicks = reuse;
            Heap.Free(a, t);
        }
    }

    [Fact]
    public unsafe void Scans_record_their_duration_and_the_suspected_count()
    {
        var t = Types.New();
        Heap.Malloc(64, t); // leaked
        double? duration = null;
        long? suspected = null;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) =>
        {
            if (i.Meter.Name == "Kmem" && i.Name.StartsWith("kmem.leak", StringComparison.Ordinal))
                l.EnableMeasurementEvents(i);
        };
        listener.SetMeasurementEventCallback<double>((i, v, _, _) => duration = v);
        listener.SetMeasurementEventCallback<long>((i, v, _, _) => suspected = v);
        listener.Start();
        LeakScanResult r = Leaks.ScanTwice();
        listener.RecordObservableInstruments();
        Assert.True(duration > 0);
        Assert.Equal(r.Leaks.Count, suspected);
        Kmemleak.Write("clear");
    }

    private sealed class Collector : EventListener
    {
        public readonly ConcurrentQueue<EventWrittenEventArgs> Events = new();
        private readonly SemaphoreSlim _arrived = new(0);
        private EventSource? _kmem;

        protected override void OnEventSourceCreated(EventSource source)
        {
            if (source.Name == "Kmem")
                _kmem = source;
        }

        public void Send(IDictionary<string, string?>? arguments) =>
            EnableEvents(_kmem ?? throw new InvalidOperationException("no Kmem source"), EventLevel.Verbose, EventKeywords.All, arguments);

        protected override void OnEventWritten(EventWrittenEventArgs e)
        {
            if (e.EventSource.Name == "Kmem")
            {
                Events.Enqueue(e);
                _arrived.Release();
            }
        }

        /// <summary>Waits (event by event; the 2-minute bound only stops a hang) until an event satisfies <paramref name="done"/>.</summary>
        public T WaitFor<T>(Func<T?> done) where T : class
        {
            var guard = DateTime.UtcNow.AddMinutes(2);
            while (true)
            {
                if (done() is { } value)
                    return value;
                if (!_arrived.Wait(guard - DateTime.UtcNow > TimeSpan.Zero ? guard - DateTime.UtcNow : TimeSpan.Zero))
                    throw new InvalidOperationException("the awaited event never came (hang guard)");
            }
        }

        public string Reply(string id) => WaitFor(() =>
        {
            var parts = Events.Where(e => e.EventName == "CommandReply" && (string?)e.Payload![0] == id).ToList();
            return parts.Count > 0 && parts.Count == (int)parts[0].Payload![4]!
                ? (int)parts[0].Payload![2]! + ":" + string.Concat(parts.OrderBy(p => (int)p.Payload![3]!).Select(p => (string)p.Payload![5]!))
                : null;
        });
    }

    [Fact]
    public unsafe void Commands_given_as_arguments_are_answered_with_events_carrying_the_request_id()
    {
        var t = Types.New();
        void* p = Heap.Malloc(300, t);
        using var c = new Collector();
        _ = Heap.TypeStats(); // the source exists once Kmem has run
        c.Send(new Dictionary<string, string?> { ["Command"] = "stat", ["RequestId"] = "r1" });
        string stat = c.Reply("r1");
        Assert.StartsWith("0:", stat);
        Assert.Contains("Memory statistics by type", stat);
        EventWrittenEventArgs row = Assert.Single(c.Events, e => e.EventName == "TypeStat" && (string?)e.Payload![1] == t.ShortDesc);
        Assert.Equal("r1", row.Payload![0]);
        Assert.Equal(t.Index, (int)row.Payload![2]!);
        Assert.Equal(t.GetStats().MemUse, (long)row.Payload![4]!);

        c.Send(new Dictionary<string, string?> { ["Command"] = "no-such-command", ["RequestId"] = "r2" });
        Assert.Equal("1:unknown kmemleak command 'no-such-command'", c.Reply("r2"));

        c.Send(new Dictionary<string, string?> { ["Command"] = "scan", ["RequestId"] = "r3" });
        Assert.StartsWith("0:", c.Reply("r3"));
        c.Send(new Dictionary<string, string?> { ["Command"] = "scan", ["RequestId"] = "r4" });
        Assert.Contains("SUMMARY:", c.Reply("r4"));
        c.Send(new Dictionary<string, string?> { ["Command"] = "leaks", ["RequestId"] = "r5" });
        string leaks = c.Reply("r5");
        Assert.Contains($"unreferenced object 0x{(nuint)p:x} (size 320):", leaks);
        Assert.Contains(c.Events, e => e.EventName == "SuspectedLeak" && (string?)e.Payload![0] == $"0x{(nuint)p:x}" && (string?)e.Payload![5] == "r5");
        Assert.Contains(c.Events, e => e.EventName == "LeakScanCompleted");
        c.Send(new Dictionary<string, string?> { ["Command"] = "verify", ["RequestId"] = "r6" });
        // Other tests allocate meanwhile (Verify is exact only at a quiet moment): the reply's form, not its count.
        Assert.Matches(@"^0:verify: \d+ allocated, \d+ listed free and \d+ quarantined blocks in \d+ slabs .* leak records checked, \d+ problem\(s\)(\n  .+)*$", c.Reply("r6"));
        long accepted = Telemetry.KmemEventSource.Log.RequestsAccepted;
        c.Send(new Dictionary<string, string?> { ["Command"] = "stat", ["RequestId"] = "r1" }); // an id already answered
        Assert.Equal(accepted, Telemetry.KmemEventSource.Log.RequestsAccepted); // refused on the enabling thread, not queued
        c.Send(new Dictionary<string, string?> { ["Command"] = "stat", ["RequestId"] = "r7" });
        Assert.Equal(accepted + 1, Telemetry.KmemEventSource.Log.RequestsAccepted);
        c.WaitFor(() => c.Events.FirstOrDefault(e => e.EventName == "Heartbeat")); // while a session is on, every 200 ms
        Kmemleak.Write("clear");
        Heap.Free(p, t);
    }

    [Fact]
    public unsafe void Diagnostic_messages_and_types_destroyed_with_live_blocks_become_events()
    {
        var t = Types.New();
        using var c = new Collector();
        _ = Heap.TypeStats();
        c.Send(null);
        void* p = Heap.Malloc(64, t);
        t.Detach();
        Assert.Contains(c.Events, e => e.EventName == "TypeLeakedOnDestroy" && (string?)e.Payload![0] == t.ShortDesc && (long)e.Payload![1]! == 1);
        Assert.Contains(c.Events, e => e.EventName == "Message" && ((string)e.Payload![1]!).StartsWith($"Warning: memory type {t.ShortDesc} leaked", StringComparison.Ordinal));
        Heap.Free(p, t);
    }

    [Fact]
    public async Task A_pipe_runs_on_a_kmem_pool_and_returns_every_block()
    {
        var t = Types.New();
        using var pool = new KmemMemoryPool(t);
        var pipe = new Pipe(new PipeOptions(pool: pool, minimumSegmentSize: 4096, useSynchronizationContext: false));
        byte[] data = Enumerable.Range(0, 100_000).Select(i => (byte)(i * 7)).ToArray();
        Task writer = Task.Run(async () =>
        {
            for (int off = 0; off < data.Length; off += 3000)
                await pipe.Writer.WriteAsync(data.AsMemory(off, Math.Min(3000, data.Length - off)));
            await pipe.Writer.CompleteAsync();
        });
        var received = new List<byte>();
        while (true)
        {
            ReadResult r = await pipe.Reader.ReadAsync();
            foreach (ReadOnlyMemory<byte> seg in r.Buffer)
                received.AddRange(seg.ToArray());
            Assert.True(t.GetStats().InUse > 0 || r.Buffer.IsEmpty); // the segments are Kmem blocks of this type
            pipe.Reader.AdvanceTo(r.Buffer.End);
            if (r.IsCompleted)
                break;
        }
        await pipe.Reader.CompleteAsync();
        await writer;
        Assert.Equal(data, received.ToArray());
        Assert.True(t.GetStats().Requests > 0);
        Assert.Equal(0, t.GetStats().InUse);
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(0));
    }

    [Fact]
    public void An_owner_collected_without_dispose_is_reported_at_once_and_its_block_freed()
    {
        var t = Types.New();
        using var pool = new KmemMemoryPool(t);
        using var c = new Collector();
        _ = Heap.TypeStats();
        c.Send(null);
        RentAndDrop(pool);
        Assert.Equal(1, t.GetStats().InUse);
        for (int i = 0; i < 10 && t.GetStats().InUse != 0; i++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
        }
        Assert.Equal(0, t.GetStats().InUse);
        EventWrittenEventArgs e = Assert.Single(c.Events, e => e.EventName == "PoolLeak" && (string?)e.Payload![0] == t.ShortDesc);
        Assert.Equal(1000L, e.Payload![1]);
        Assert.Contains(nameof(RentAndDrop), (string)e.Payload![2]!);
        string report = Kmemleak.Read();
        Assert.Contains("(size 1000):", report);
        Assert.Contains($"memory pool buffer of type {t.ShortDesc} collected without Dispose", report);
        Assert.Contains(nameof(RentAndDrop), report);
        Kmemleak.Write("clear");
        Assert.DoesNotContain("collected without Dispose", Kmemleak.Read());

        IMemoryOwner<byte> owner = pool.Rent(10);
        owner.Memory.Span.Fill(1);
        owner.Dispose();
        owner.Dispose(); // twice is harmless
        Assert.Throws<ObjectDisposedException>(() => owner.Memory.Span.Length);
        Assert.Equal(0, t.GetStats().InUse);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void RentAndDrop(KmemMemoryPool pool) => pool.Rent(1000).Memory.Span.Fill(9);
}

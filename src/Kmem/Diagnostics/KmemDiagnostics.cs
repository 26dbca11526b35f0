// Diagnostics/KmemDiagnostics.cs — the library's diagnostics output: console messages, warnings and panics, as events.
namespace Kmem;

/// <summary>What kind of message Kmem printed.</summary>
public enum KmemMessageKind
{
    /// <summary>A console message (printf in the kernel), e.g. a type destroyed with live blocks.</summary>
    Warning,
    /// <summary>A panic; the same text is in the thrown <see cref="KmemPanicException"/>.</summary>
    Panic,
}

/// <summary>
/// Where Kmem's console messages go. Subscribe to <see cref="Message"/>; by default (while nobody subscribes)
/// messages are written to standard error. The last 256 messages are kept for <see cref="Recent"/>.
/// </summary>
public static class KmemDiagnostics
{
    private static readonly Queue<string> s_recent = new();
    private const int RecentCapacity = 256;

    /// <summary>Raised for every message, on the thread that caused it.</summary>
    public static event Action<KmemMessageKind, string>? Message;

    /// <summary>Whether messages also go to standard error while nobody subscribes (default true).</summary>
    public static bool WriteToStandardError { get; set; } = true;

    /// <summary>The most recent messages, oldest first.</summary>
    public static IReadOnlyList<string> Recent
    {
        get { lock (s_recent) return s_recent.ToArray(); }
    }

    internal static void Publish(KmemMessageKind kind, string text)
    {
        lock (s_recent)
        {
            if (s_recent.Count == RecentCapacity)
                s_recent.Dequeue();
            s_recent.Enqueue(text);
        }
        Telemetry.KmemTelemetry.Message(kind, text);
        Action<KmemMessageKind, string>? handler = Message;
        if (handler is not null)
            handler(kind, text);
        else if (WriteToStandardError && kind == KmemMessageKind.Warning)
            Console.Error.WriteLine("kmem: " + text);
    }
}

// Diagnostics/AllocContexts.cs — allocation contexts: a 32-bit id for (call site, thread), the value the side tables
// keep per block so a leak report can name where and on which thread ("comm", "pid") a block was allocated.
using Kmem.Platform;

namespace Kmem.Diagnostics;

internal static class AllocContexts
{
    /// <summary>A thread as reports show it: its name (comm) and OS thread id (pid).</summary>
    internal sealed record ThreadInfo(string Name, int OsThreadId);

    private static readonly object s_lock = new();
    private static readonly List<ThreadInfo> s_threads = new() { new ThreadInfo("unknown", 0) };
    private static readonly Dictionary<(uint Site, uint Thread), uint> s_byKey = new();
    private static readonly List<(uint Site, uint Thread)> s_byId = new() { (0, 0) };

    /// <summary>Registers the calling thread; returns its ordinal (never 0).</summary>
    public static uint RegisterThread()
    {
        Thread t = Thread.CurrentThread;
        // An unnamed main thread shows as the program, as the kernel shows a task by its command name.
        string name = t.Name ?? (t.ManagedThreadId == 1 ? AppDomain.CurrentDomain.FriendlyName : $"thread {t.ManagedThreadId}");
        var info = new ThreadInfo(name, OsPages.Provider.CurrentThreadId());
        lock (s_lock)
        {
            s_threads.Add(info);
            return (uint)(s_threads.Count - 1);
        }
    }

    /// <summary>The context id of (site, thread).</summary>
    public static uint Intern(uint site, uint thread)
    {
        lock (s_lock)
        {
            if (!s_byKey.TryGetValue((site, thread), out uint id))
            {
                id = (uint)s_byId.Count;
                s_byId.Add((site, thread));
                s_byKey.Add((site, thread), id);
            }
            return id;
        }
    }

    public static uint SiteOf(uint context)
    {
        lock (s_lock)
            return context < s_byId.Count ? s_byId[(int)context].Site : 0;
    }

    /// <summary>Every context's thread ordinal, indexed by context (a snapshot).</summary>
    public static uint[] ThreadOrdinals()
    {
        lock (s_lock)
            return s_byId.Select(k => k.Thread).ToArray();
    }

    public static uint ThreadOrdinalOf(uint context)
    {
        lock (s_lock)
            return context < s_byId.Count ? s_byId[(int)context].Thread : 0;
    }

    public static ThreadInfo ThreadOf(uint context)
    {
        lock (s_lock)
            return s_threads[context < s_byId.Count ? (int)s_byId[(int)context].Thread : 0];
    }

    /// <summary>"member at file:line" of a context.</summary>
    public static string Describe(uint context) => CallSites.Describe(SiteOf(context));
}

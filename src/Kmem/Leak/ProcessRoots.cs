// Leak/ProcessRoots.cs — which memory of the process is a root: every readable and writable mapping (GC heap, thread
// stacks, native libraries' data, other native heaps) minus Kmem's own regions, minus the dead part of each thread stack
// (below its stack pointer), minus whole stacks with stack=off and the scanner's own worker stacks. Ranges come out
// complemented, like every address the detector keeps.
using Kmem.Pages;
using Kmem.Platform;

namespace Kmem.Leak;

/// <summary>A root range: ~start and length.</summary>
internal readonly record struct RootRange(nuint StartComplement, nuint Length);

internal static class ProcessRoots
{
    /// <summary>Bytes below a stack pointer that still belong to the live frame (the System V red zone).</summary>
    private const nuint RedZone = 128;

    /// <summary>
    /// The process roots now. <paramref name="ownStackPointerComplement"/> is where the calling thread's stack stops being
    /// the program's (the detector's entry frame); <paramref name="excludedThreads"/> are threads whose stacks are never
    /// roots (the scanner's workers), with a stack address of each.
    /// </summary>
    public static unsafe List<RootRange> Collect(IProcessMemory process, bool stacks, int ownTid, nuint ownStackPointerComplement,
        IReadOnlyList<(int Tid, nuint StackComplement)> excludedThreads)
    {
        List<ProcessMapping> maps = process.WritableMappings();
        var cuts = new List<(nuint StartComplement, nuint Length)>(OwnRegions.Snapshot());

        // Thread stacks: the part below the stack pointer is dead frames (stale values hide leaks); with stack=off, and for
        // the scanner's own threads, the whole stack mapping goes. A thread that was running when asked has no stack
        // pointer: its stack is found from an address seen before (an earlier answer, or its thread cache), and is then
        // read whole, or left out whole with stack=off.
        List<ThreadStack> threads = process.Threads();
        Dictionary<int, nuint> known = KnownStacks(threads);
        foreach (ThreadStack t in threads)
        {
            nuint spc = t.Tid == ownTid ? ownStackPointerComplement : t.StackPointerComplement;
            bool whole = !stacks;
            foreach ((int tid, nuint stackC) in excludedThreads)
                if (tid == t.Tid)
                {
                    spc = stackC;
                    whole = true;
                }
            if (spc == 0 && known.TryGetValue(t.Tid, out nuint seenC))
            {
                if (!whole)
                    continue; // stack=on: its live part is unknown, so all of it is read
                spc = seenC;
            }
            if (spc == 0)
                continue; // running when asked: its stack is scanned whole, as data
            int m = Containing(maps, spc);
            if (m < 0)
                continue;
            nuint mapStart = ~maps[m].StartComplement, mapEnd = ~maps[m].EndComplement, sp = ~spc;
            nuint live = t.Tid == ownTid ? sp : sp - RedZone; // the caller's mark is exact: below it are the detector's frames
            nuint cutEnd = whole ? mapEnd : live > mapStart && live < mapEnd ? live : mapStart;
            if (cutEnd > mapStart)
                cuts.Add((~mapStart, cutEnd - mapStart));
        }
        if (!stacks)
            foreach (ProcessMapping pm in maps)
                if (pm.IsMainStack)
                    cuts.Add((pm.StartComplement, ~pm.EndComplement - ~pm.StartComplement));

        // Complemented starts sort in reverse address order.
        cuts.Sort(static (a, b) => b.StartComplement.CompareTo(a.StartComplement));
        var roots = new List<RootRange>(maps.Count);
        foreach (ProcessMapping pm in maps)
        {
            if (pm.SharedFile || pm.Device)
                continue;
            nuint start = ~pm.StartComplement, end = ~pm.EndComplement;
            foreach ((nuint cutC, nuint cutLength) in cuts) // ascending starts; cuts may overlap
            {
                nuint cs = ~cutC, ce = cs + cutLength;
                if (cs >= end)
                    break;
                if (ce <= start)
                    continue;
                if (cs > start)
                    Add(roots, start, cs);
                start = ce;
                if (start >= end)
                    break;
            }
            if (start < end)
                Add(roots, start, end);
        }
        return roots;
    }

    // tid → ~(an address in its stack): the last stack pointer a thread reported, else its thread cache's record.
    private static readonly Dictionary<int, nuint> s_seen = new();

    private static unsafe Dictionary<int, nuint> KnownStacks(List<ThreadStack> threads)
    {
        var live = new HashSet<int>();
        foreach (ThreadStack t in threads)
        {
            live.Add(t.Tid);
            if (t.StackPointerComplement != 0)
                s_seen[t.Tid] = t.StackPointerComplement;
        }
        foreach (int tid in s_seen.Keys.Where(k => !live.Contains(k)).ToList())
            s_seen.Remove(tid); // ended (a new thread may get its id)
        var known = new Dictionary<int, nuint>(s_seen);
        lock (Caches.ThreadCaches.Lock)
        {
            foreach (nint tc in Caches.ThreadCaches.LiveUnderLock)
            {
                Caches.ThreadHeader* h = Caches.ThreadCaches.Header((byte*)tc);
                if (h->StackComplement != 0 && live.Contains(h->OsThreadId))
                    known.TryAdd(h->OsThreadId, h->StackComplement);
            }
        }
        return known;
    }

    private static void Add(List<RootRange> roots, nuint start, nuint end)
    {
        start = (start + 7) & ~(nuint)7;
        if (end >= start + 8)
            roots.Add(new RootRange(~start, (end - start) & ~(nuint)7));
    }

    private static int Containing(List<ProcessMapping> maps, nuint addressComplement)
    {
        nuint a = ~addressComplement;
        int lo = 0, hi = maps.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (a < ~maps[mid].StartComplement)
                hi = mid - 1;
            else if (a >= ~maps[mid].EndComplement)
                lo = mid + 1;
            else
                return mid;
        }
        return -1;
    }
}

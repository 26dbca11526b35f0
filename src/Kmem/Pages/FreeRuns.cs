// Pages/FreeRuns.cs — a first-fit allocator of runs over a numbered range (kmem_map units, bytes of a physical region),
// keeping free runs sorted by start and coalescing neighbours on return. Not thread-safe: callers hold their own lock.
namespace Kmem.Pages;

internal sealed class FreeRuns
{
    private readonly SortedDictionary<ulong, ulong> _free = new(); // start → length

    /// <summary>All of [0, <paramref name="length"/>) starts free.</summary>
    public FreeRuns(ulong length)
    {
        if (length > 0)
            _free.Add(0, length);
    }

    /// <summary>Takes the lowest run of <paramref name="count"/> and returns its start, or −1 when none is long enough.</summary>
    public long Take(ulong count)
    {
        foreach (KeyValuePair<ulong, ulong> run in _free)
        {
            if (run.Value < count)
                continue;
            _free.Remove(run.Key);
            if (run.Value > count)
                _free.Add(run.Key + count, run.Value - count);
            return (long)run.Key;
        }
        return -1;
    }

    /// <summary>Returns [<paramref name="start"/>, start + <paramref name="count"/>), merging it with free neighbours.</summary>
    public void Put(ulong start, ulong count)
    {
        ulong end = start + count;
        KeyValuePair<ulong, ulong>? before = null;
        foreach (KeyValuePair<ulong, ulong> run in _free)
        {
            if (run.Key >= start)
                break;
            before = run;
        }
        if (before is { } b && b.Key + b.Value == start)
        {
            _free.Remove(b.Key);
            start = b.Key;
        }
        if (_free.Remove(end, out ulong after))
            end += after;
        _free.Add(start, end - start);
    }
}

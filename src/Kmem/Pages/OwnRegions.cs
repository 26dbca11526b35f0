// Pages/OwnRegions.cs — every range of address space Kmem itself holds: kmem_map, the page map, the side tables, the
// thread caches, the class tables, physical mappings and the leak scanner's buffers. The process-root scan skips them
// (Kmem's blocks are scanned only when reachable; its metadata never counts as a reference). Ranges are stored
// complemented, like every address Kmem keeps.
namespace Kmem.Pages;

internal static unsafe class OwnRegions
{
    private static readonly object s_lock = new();
    private static readonly List<(nuint StartComplement, nuint Length)> s_ranges = new();

    /// <summary>Declares [start, start+length) as Kmem's own.</summary>
    public static void Add(void* start, nuint length)
    {
        if (start == null || length == 0)
            return;
        lock (s_lock)
            s_ranges.Add((~(nuint)start, length));
    }

    /// <summary>Forgets a range declared by <see cref="Add"/> (same start and length).</summary>
    public static void Remove(void* start, nuint length)
    {
        lock (s_lock)
            s_ranges.Remove((~(nuint)start, length));
    }

    /// <summary>A copy of the ranges, complemented starts.</summary>
    public static List<(nuint StartComplement, nuint Length)> Snapshot()
    {
        lock (s_lock)
            return new List<(nuint, nuint)>(s_ranges);
    }
}

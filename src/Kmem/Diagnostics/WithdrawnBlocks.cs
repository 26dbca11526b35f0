// Diagnostics/WithdrawnBlocks.cs — blocks the allocator takes out of use on purpose: a quarantined block written after
// free (never handed out again) and the blocks behind a free list cut because a link in it was corrupt. The heap
// verifier counts these instead of reporting them as lost. Blocks are kept as free-list links (kmem_map offsets + 1).
namespace Kmem.Diagnostics;

internal static class WithdrawnBlocks
{
    private static readonly object s_lock = new();
    private static readonly HashSet<nuint> s_links = new();
    private static readonly long[] s_cut = new long[Slabs.SizeClasses.Count];

    /// <summary>The block whose link is <paramref name="link"/> will never be used again.</summary>
    public static void Note(nuint link)
    {
        lock (s_lock)
            s_links.Add(link);
    }

    /// <summary>A list of class <paramref name="cls"/> was cut: up to <paramref name="blocks"/> blocks behind the cut are
    /// lost (which ones cannot be known: the link that named them is corrupt).</summary>
    public static void NoteCut(int cls, long blocks)
    {
        if (blocks <= 0)
            return;
        lock (s_lock)
            s_cut[cls] += blocks;
    }

    /// <summary>A copy of the withdrawn links and of the blocks that cut lists may have lost, per class.</summary>
    public static (HashSet<nuint> Links, long[] Cut) Snapshot()
    {
        lock (s_lock)
            return (new HashSet<nuint>(s_links), (long[])s_cut.Clone());
    }
}

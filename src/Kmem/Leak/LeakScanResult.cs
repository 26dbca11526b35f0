// Leak/LeakScanResult.cs — what Kmemleak.Scan() returns: the leaks found (new and current), grouped summaries, statistics.
using System.Text;

namespace Kmem;

/// <summary>What kind of memory a leaked object is.</summary>
public enum LeakObjectKind { Block, Large, Vmalloc, PerCpu, Foreign, Phys }

/// <summary>One unreferenced object.</summary>
/// <param name="Address">Its address (the per-CPU cookie for per-CPU objects, the physical address for phys objects).</param>
/// <param name="Size">Its size as tracked (the block's class size, whole pages, or the registered size).</param>
/// <param name="Type">Its malloc type's short description ("" for foreign and phys objects).</param>
/// <param name="Site">Where it was allocated: "member at file:line".</param>
/// <param name="Direct">True when nothing else unreferenced points to it (a leak's root); false for indirect leaks.</param>
/// <param name="Age">How long ago it was allocated, at least.</param>
/// <param name="Kind">What kind of memory it is.</param>
/// <param name="IsNew">True when this scan reported it for the first time.</param>
public sealed record LeakReport(nuint Address, nuint Size, string Type, string Site, bool Direct, TimeSpan Age, LeakObjectKind Kind, bool IsNew);

/// <summary>Figures about one scan.</summary>
public sealed record LeakScanStats(long Objects, long BytesScanned, TimeSpan Duration);

/// <summary>The result of <see cref="Kmemleak.Scan"/>.</summary>
public sealed class LeakScanResult
{
    internal LeakScanResult(IReadOnlyList<LeakReport> leaks, LeakScanStats stats)
    {
        Leaks = leaks;
        NewLeaks = leaks.Where(l => l.IsNew).ToList();
        Stats = stats;
    }

    /// <summary>Every reported object that is unreferenced now, in allocation order.</summary>
    public IReadOnlyList<LeakReport> Leaks { get; }

    /// <summary>Those reported for the first time by this scan.</summary>
    public IReadOnlyList<LeakReport> NewLeaks { get; }

    public LeakScanStats Stats { get; }

    /// <summary>
    /// LeakSanitizer-style summary: "Direct leak of N byte(s) in M object(s) of type T allocated from:" and the site, per
    /// group (direct groups first, largest first), then "SUMMARY: N byte(s) leaked in M allocation(s)."
    /// </summary>
    public string Summary()
    {
        var o = new StringBuilder();
        foreach (var g in Leaks.GroupBy(l => (l.Direct, l.Type, l.Site))
                     .OrderByDescending(g => g.Key.Direct).ThenByDescending(g => g.Sum(l => (long)l.Size)))
        {
            o.Append($"{(g.Key.Direct ? "Direct" : "Indirect")} leak of {g.Sum(l => (long)l.Size)} byte(s) in {g.Count()} object(s)");
            if (g.Key.Type.Length > 0)
                o.Append($" of type {g.Key.Type}");
            o.Append(" allocated from:\n    ").Append(g.Key.Site).Append("\n\n");
        }
        o.Append($"SUMMARY: {Leaks.Sum(l => (long)l.Size)} byte(s) leaked in {Leaks.Count} allocation(s).\n");
        return o.ToString();
    }
}

// Leak/LeakScanResult.cs — what Kmemleak.Scan() returns: the leaks found (new and current), grouped summaries, statistics.
using System.Text;

namespace Kmem;

/// <summary>What kind of memory a leaked object is.</summary>
public enum LeakObjectKind { Block, Large, Vmalloc, PerCpu, Foreign, Phys }

/// <summary>One unreferenced object. The address is kept complemented inside, so a report the program holds on to does
/// not itself look like a reference to the leak at the next scan.</summary>
public sealed record LeakReport
{
    private readonly nuint _addressComplement;

    /// <param name="address">Its address (the per-CPU cookie for per-CPU objects, the physical address for phys objects).</param>
    /// <param name="size">Its size as tracked (the block's class size, whole pages, or the registered size).</param>
    /// <param name="type">Its malloc type's short description ("" for foreign and phys objects).</param>
    /// <param name="site">Where it was allocated: "member at file:line".</param>
    /// <param name="direct">True when nothing else unreferenced points to it (a leak's root); false for indirect leaks.</param>
    /// <param name="age">How long ago it was allocated, at least.</param>
    /// <param name="kind">What kind of memory it is.</param>
    /// <param name="isNew">True when this scan reported it for the first time.</param>
    public LeakReport(nuint address, nuint size, string type, string site, bool direct, TimeSpan age, LeakObjectKind kind, bool isNew)
    {
        ArgumentNullException.ThrowIfNull(type);
        ArgumentNullException.ThrowIfNull(site);
        _addressComplement = ~address;
        Size = size;
        Type = type;
        Site = site;
        Direct = direct;
        Age = age;
        Kind = kind;
        IsNew = isNew;
    }

    /// <summary>Its address (the per-CPU cookie for per-CPU objects, the physical address for phys objects).</summary>
    public nuint Address => ~_addressComplement;

    /// <summary>~<see cref="Address"/>: for code that compares addresses without holding one (the scan would see it).</summary>
    internal nuint AddressComplement => _addressComplement;
    /// <summary>Its size as tracked (the block's class size, whole pages, or the registered size).</summary>
    public nuint Size { get; }
    /// <summary>Its malloc type's short description ("" for foreign and phys objects).</summary>
    public string Type { get; }
    /// <summary>Where it was allocated: "member at file:line".</summary>
    public string Site { get; }
    /// <summary>True when nothing else unreferenced points to it (a leak's root); false for indirect leaks.</summary>
    public bool Direct { get; }
    /// <summary>How long ago it was allocated, at least.</summary>
    public TimeSpan Age { get; }
    /// <summary>What kind of memory it is.</summary>
    public LeakObjectKind Kind { get; }
    /// <summary>True when this scan reported it for the first time.</summary>
    public bool IsNew { get; }
}

/// <summary>Figures about one scan. <see cref="Duration"/> is the whole scan, the forced GC included.</summary>
public sealed record LeakScanStats(long Objects, long BytesScanned, TimeSpan Duration)
{
    /// <summary>The blocking full GC run first (<c>gc=on</c>); zero when none ran.</summary>
    public TimeSpan GcTime { get; init; }
    /// <summary>Whether the process's memory was scanned as roots (<c>process=on</c> on a supported OS).</summary>
    public bool ProcessRoots { get; init; }
    /// <summary>Bytes of process memory read as roots, over all marking passes.</summary>
    public long ProcessRootBytes { get; init; }
    /// <summary>Bytes listed as roots that could not be read when the scan got to them (another thread unmapped or
    /// protected them meanwhile): skipped, never a fault.</summary>
    public long ProcessRootBytesUnreadable { get; init; }
    /// <summary>Root ranges in the first pass (mappings less Kmem's own memory and dead stack).</summary>
    public int ProcessRootRanges { get; init; }
    /// <summary>Time reading and filtering the process roots, over all passes.</summary>
    public TimeSpan ProcessRootTime { get; init; }
    /// <summary>Time marking (roots, gray list, second chance), over all passes, process-root reading included.</summary>
    public TimeSpan MarkTime { get; init; }
    /// <summary>Time deciding what is unreferenced, describing and classifying it (direct or indirect).</summary>
    public TimeSpan ClassifyTime { get; init; }
    /// <summary>Marking passes: 1, plus the confirmation passes run before anything new was reported.</summary>
    public int Passes { get; init; }
}

/// <summary>Counts of a scan's reports: all, direct, new, and those of one type (by its short description).</summary>
internal readonly record struct LeakTally(int Count, int Direct, int New, int OfType);

/// <summary>The result of <see cref="Kmemleak.Scan"/>.</summary>
public sealed class LeakScanResult
{
    private readonly Lazy<IReadOnlyList<LeakReport>> _leaks;
    private readonly Lazy<IReadOnlyList<LeakReport>> _newLeaks;

    internal LeakScanResult(IReadOnlyList<LeakReport> leaks, LeakScanStats stats)
    {
        _leaks = new Lazy<IReadOnlyList<LeakReport>>(leaks);
        _newLeaks = new Lazy<IReadOnlyList<LeakReport>>(() => leaks.Where(l => l.IsNew).ToList());
        LeakCount = leaks.Count;
        Stats = stats;
    }

    // The reports are made when first asked for (a scan that finds 100,000 leaks need not build 100,000 objects for a
    // caller that only counts them); what they say was fixed when the scan ended.
    internal LeakScanResult(int count, Func<IReadOnlyList<LeakReport>> leaks, Func<IReadOnlyList<LeakReport>> newLeaks,
        Func<string, LeakTally> tally, LeakScanStats stats)
    {
        LeakCount = count;
        _tally = tally;
        _leaks = new Lazy<IReadOnlyList<LeakReport>>(leaks);
        _newLeaks = new Lazy<IReadOnlyList<LeakReport>>(() => _leaks.IsValueCreated ? _leaks.Value.Where(l => l.IsNew).ToList() : newLeaks());
        Stats = stats;
    }

    /// <summary>How many reports <see cref="Leaks"/> holds, without making them.</summary>
    internal int LeakCount { get; }

    private readonly Func<string, LeakTally>? _tally;

    /// <summary>What <see cref="Leaks"/> would hold, counted without making the reports (for the benchmarks, whose next
    /// scan's forced GC would otherwise also collect 100,000 report objects).</summary>
    internal LeakTally Tally(string type)
    {
        LeakTally counts = _tally is { } tally ? tally(type)
            : new LeakTally(Leaks.Count, Leaks.Count(l => l.Direct), Leaks.Count(l => l.IsNew), Leaks.Count(l => l.Type == type));
        GC.KeepAlive(this); // see Leaks
        return counts;
    }

    // The scanner lends the memory of a findings list to a later scan once every result made from it is collected: this
    // result stays alive (KeepAlive) until its reports are made from the list, or a GC meanwhile could let it go.

    /// <summary>Every reported object that is unreferenced now, in allocation order.</summary>
    public IReadOnlyList<LeakReport> Leaks
    {
        get
        {
            IReadOnlyList<LeakReport> leaks = _leaks.Value;
            GC.KeepAlive(this);
            return leaks;
        }
    }

    /// <summary>Those reported for the first time by this scan.</summary>
    public IReadOnlyList<LeakReport> NewLeaks
    {
        get
        {
            IReadOnlyList<LeakReport> leaks = _newLeaks.Value;
            GC.KeepAlive(this);
            return leaks;
        }
    }

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

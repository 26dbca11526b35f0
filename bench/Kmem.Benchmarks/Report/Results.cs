// Report/Results.cs — everything one harness run measured: a row per (workload, subject) with median, min and max,
// the targets with their same-run figures and verdicts, and the notes (skipped peers and the like). The runner fills
// it; the JSON file, the console summary and the docs section are all made from it.
namespace Kmem.Benchmarks.Report;

/// <summary>One figure: the median (min–max) of <paramref name="Count"/> samples, in <paramref name="Unit"/>.</summary>
internal sealed record Row(string Workload, string Subject, double Median, double Min, double Max, int Count, string Unit);

/// <summary>
/// One target of issue #8: <paramref name="Figure"/> (a ratio such as <c>kmem/mimalloc</c>, or one subject's value)
/// measured in this run must be <paramref name="Comparison"/> (<c>&lt;=</c>, <c>&gt;=</c> or <c>&lt;</c>)
/// <paramref name="Limit"/>; <paramref name="Value"/> is null when a side was not measured.
/// </summary>
internal sealed record Target(string Description, string Workload, string Figure, double? Value, string Comparison,
    double Limit)
{
    public bool? Met => Value is not { } v ? null : Comparison switch
    {
        "<=" => v <= Limit,
        ">=" => v >= Limit,
        "<" => v < Limit,
        _ => v > Limit,
    };
}

internal sealed class Results
{
    private readonly Dictionary<string, string> _descriptions = new(StringComparer.Ordinal);

    public List<Row> Rows { get; } = [];
    public List<Target> Targets { get; } = [];

    /// <summary>Comparisons shown beside the targets, held to the same limits, but not targets of the issue (other
    /// subjects than the ones the issue names).</summary>
    public List<Target> Extras { get; } = [];
    public List<string> Notes { get; } = [];

    /// <summary>Workloads in the order their first row or description arrived.</summary>
    public List<string> Workloads { get; } = [];

    /// <summary>Sets what <paramref name="workload"/>'s figures mean (the heading of its table).</summary>
    public void Describe(string workload, string description)
    {
        _descriptions[workload] = description;
        if (!Workloads.Contains(workload))
        {
            Workloads.Add(workload);
        }
    }

    public string? DescriptionOf(string workload) => _descriptions.GetValueOrDefault(workload);

    /// <summary>Adds the median (min–max) of <paramref name="samples"/>; nothing when there are none.</summary>
    public void Add(string workload, string subject, IReadOnlyCollection<double> samples, string unit)
    {
        if (samples.Count == 0)
        {
            return;
        }

        Rows.Add(new Row(workload, subject, Quick.Timing.Median(samples), samples.Min(), samples.Max(), samples.Count, unit));
        if (!Workloads.Contains(workload))
        {
            Workloads.Add(workload);
        }
    }

    /// <summary>Adds a figure summarized elsewhere (a child's median, min and max of <paramref name="count"/>).</summary>
    public void AddSummary(string workload, string subject, double median, double min, double max, int count, string unit)
    {
        Rows.Add(new Row(workload, subject, median, min, max, count, unit));
        if (!Workloads.Contains(workload))
        {
            Workloads.Add(workload);
        }
    }

    /// <summary>Adds a single figure (one scan, one RSS reading).</summary>
    public void AddOne(string workload, string subject, double value, string unit) =>
        Add(workload, subject, [value], unit);

    public double? Median(string workload, string subject) =>
        Rows.FirstOrDefault(r => r.Workload == workload && r.Subject == subject)?.Median;

    /// <summary>A target on <c>numerator/denominator</c> of two subjects' medians on one workload.</summary>
    public void TargetRatio(string description, string workload, string numerator, string denominator,
        string comparison, double limit) =>
        Targets.Add(Ratio(description, workload, numerator, denominator, comparison, limit));

    /// <summary>An extra comparison on <c>numerator/denominator</c> (see <see cref="Extras"/>).</summary>
    public void ExtraRatio(string description, string workload, string numerator, string denominator,
        string comparison, double limit) =>
        Extras.Add(Ratio(description, workload, numerator, denominator, comparison, limit));

    private Target Ratio(string description, string workload, string numerator, string denominator,
        string comparison, double limit)
    {
        double? value = Median(workload, numerator) is { } n && Median(workload, denominator) is { } d && d > 0
            ? n / d
            : null;
        return new Target(description, workload, $"{numerator}/{denominator}", value, comparison, limit);
    }

    /// <summary>A target on one subject's median.</summary>
    public void TargetValue(string description, string workload, string subject, string comparison, double limit) =>
        Targets.Add(new Target(description, workload, subject, Median(workload, subject), comparison, limit));

    /// <summary>An extra comparison on one subject's median (see <see cref="Extras"/>).</summary>
    public void ExtraValue(string description, string workload, string subject, string comparison, double limit) =>
        Extras.Add(new Target(description, workload, subject, Median(workload, subject), comparison, limit));
}

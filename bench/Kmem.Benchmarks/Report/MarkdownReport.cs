// Report/MarkdownReport.cs — the human-readable result: a markdown block (run facts, one table per workload with
// median and min–max, then the targets table) printed at the end of a run and, with --docs, written between the
// generated-section markers of docs/benchmarks.md.
using System.Globalization;
using System.Text;

namespace Kmem.Benchmarks.Report;

internal static class MarkdownReport
{
    public const string BeginMarker = "<!-- bench:generated:begin -->";
    public const string EndMarker = "<!-- bench:generated:end -->";

    /// <summary>The whole block: facts, notes, a table per workload, the targets.</summary>
    public static string Build(string machine, RunInfo info, Results results)
    {
        var md = new StringBuilder();
        md.AppendLine($"Generated {info.DateUtc} by:");
        md.AppendLine();
        md.AppendLine("```sh");
        md.AppendLine(info.Command);
        md.AppendLine("```");
        md.AppendLine();
        md.AppendLine($"- machine: {machine}");
        md.AppendLine($"- load average at the start: {info.LoadAverage}");
        md.AppendLine($"- git commit: {info.Commit}");
        md.AppendLine($"- method: {info.Method}");
        foreach (string note in results.Notes)
        {
            md.AppendLine($"- note: {note}");
        }

        foreach (string workload in results.Workloads)
        {
            List<Row> rows = results.Rows.Where(r => r.Workload == workload).ToList();
            md.AppendLine();
            string description = results.DescriptionOf(workload) is { } d ? $": {d}" : "";
            md.AppendLine($"**`{workload}`**{description}");
            md.AppendLine();
            if (rows.Count == 0)
            {
                md.AppendLine("(not measured in this run; see the notes)");
                continue;
            }

            md.AppendLine("| subject | median | min–max | n | unit |");
            md.AppendLine("|---|---:|---|---:|---|");
            foreach (Row row in rows)
            {
                string range = row.Count > 1 ? $"{Format(row.Min)}–{Format(row.Max)}" : "–";
                md.AppendLine($"| `{row.Subject}` | {Format(row.Median)} | {range} | {row.Count} | {row.Unit} |");
            }
        }

        md.AppendLine();
        md.AppendLine("**Targets** (issue #8; ratios of medians from this run):");
        md.AppendLine();
        AppendTargets(md, results.Targets, "target", "result");
        if (results.Extras.Count > 0)
        {
            md.AppendLine();
            md.AppendLine("**Extra comparisons** (not targets of the issue: other subjects, held to the same limits):");
            md.AppendLine();
            AppendTargets(md, results.Extras, "comparison", "within the limit");
        }

        return md.ToString();
    }

    private static void AppendTargets(StringBuilder md, List<Target> targets, string what, string verdict)
    {
        md.AppendLine($"| {what} | workload | figure | measured | limit | {verdict} |");
        md.AppendLine("|---|---|---|---:|---|---|");
        foreach (Target t in targets)
        {
            string value = t.Value is { } v ? v.ToString("F2", CultureInfo.InvariantCulture) : "–";
            string met = t.Met switch { true => "met", false => "**missed**", null => "not measured" };
            string limit = $"{t.Comparison.Replace("<=", "≤", StringComparison.Ordinal).Replace(">=", "≥", StringComparison.Ordinal)} "
                + t.Limit.ToString("0.##", CultureInfo.InvariantCulture);
            md.AppendLine($"| {t.Description} | `{t.Workload}` | {t.Figure} | {value} | {limit} | {met} |");
        }
    }

    /// <summary>
    /// Replaces the text between the markers in <paramref name="path"/> with <paramref name="block"/>; returns null on
    /// success, else why not (file missing, markers missing or out of order). The file is left alone on failure.
    /// </summary>
    public static string? WriteDocs(string path, string block)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"cannot read {path}: {e.Message}";
        }

        // Only markers on lines of their own count: the docs may mention them in running text.
        int begin = FindMarkerLine(text, BeginMarker, 0);
        int end = begin < 0 ? -1 : FindMarkerLine(text, EndMarker, begin);
        if (begin < 0 || end < 0)
        {
            return $"{path} has no '{BeginMarker}' ... '{EndMarker}' section (each marker on a line of its own)";
        }

        string updated = text[..(begin + BeginMarker.Length)] + "\n" + block.TrimEnd() + "\n" + text[end..];
        File.WriteAllText(path, updated);
        return null;
    }

    /// <summary>The index of the first line from <paramref name="from"/> that is <paramref name="marker"/> alone
    /// (surrounding blanks allowed), or −1.</summary>
    private static int FindMarkerLine(string text, string marker, int from)
    {
        for (int at = text.IndexOf(marker, from, StringComparison.Ordinal); at >= 0;
             at = text.IndexOf(marker, at + marker.Length, StringComparison.Ordinal))
        {
            int lineStart = text.LastIndexOf('\n', Math.Max(0, at - 1)) + 1;
            if (at == 0)
            {
                lineStart = 0;
            }

            int lineEnd = text.IndexOf('\n', at);
            string line = text[lineStart..(lineEnd < 0 ? text.Length : lineEnd)];
            if (line.Trim() == marker)
            {
                return at;
            }
        }

        return -1;
    }

    /// <summary>Three significant figures or so: 12.3, 1.23, 123, 1234.</summary>
    private static string Format(double value) => Math.Abs(value) switch
    {
        >= 100 => value.ToString("F0", CultureInfo.InvariantCulture),
        >= 10 => value.ToString("F1", CultureInfo.InvariantCulture),
        _ => value.ToString("F2", CultureInfo.InvariantCulture),
    };
}

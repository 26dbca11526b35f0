// Report/BenchJson.cs — the machine-readable result file: its shape ({machine, runs, ratios} plus when, where and how
// it was made), the machine description line, and writing it with System.Text.Json's source generator (no reflection).
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Kmem.Benchmarks.Report;

/// <summary>One measured figure: <paramref name="Value"/> <paramref name="Unit"/> for a subject on a workload (the
/// median over the repetitions when there are several).</summary>
internal sealed record BenchRun(string Workload, string Subject, double Value, string Unit);

/// <summary>One target: the same-run <paramref name="Ratio"/> (null when not measured), the limit it is held to, and
/// whether it was met (null when not measured).</summary>
internal sealed record BenchRatio(string Target, string Workload, string Figure, double? Ratio, string Comparison,
    double Limit, bool? Met);

/// <summary>The whole result file. <paramref name="Ratios"/>, <paramref name="Date"/>, <paramref name="Commit"/> and
/// <paramref name="Command"/> are null in the modes that have no targets.</summary>
internal sealed record BenchReport(string Machine, BenchRun[] Runs, BenchRatio[]? Ratios = null, string? Date = null,
    string? Commit = null, string? Command = null, BenchRatio[]? Extras = null);

/// <summary>Source-generated serializer for <see cref="BenchReport"/>.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(BenchReport))]
internal sealed partial class BenchJsonContext : JsonSerializerContext;

/// <summary>Writes result files and describes the machine they came from.</summary>
internal static class BenchJson
{
    /// <summary>Writes <paramref name="report"/> to <paramref name="path"/>, creating its directory if needed.</summary>
    public static void Write(string path, BenchReport report)
    {
        string? directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        // Relaxed escaping keeps "<=" and the like readable; the file is data, never embedded in HTML.
        var context = new BenchJsonContext(new JsonSerializerOptions(BenchJsonContext.Default.Options)
        {
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        });
        File.WriteAllText(path, JsonSerializer.Serialize(report, context.BenchReport) + "\n");
    }

    /// <summary>The report of <paramref name="results"/>: medians rounded to 3 significant digits after the point.</summary>
    public static BenchReport From(string machine, Results results, RunInfo? info) => new(
        machine,
        [.. results.Rows.Select(r => new BenchRun(r.Workload, r.Subject, Round(r.Median), r.Unit))],
        info is null
            ? null
            : [.. results.Targets.Select(ToRatio)],
        info?.DateUtc, info?.Commit, info?.Command,
        info is null || results.Extras.Count == 0 ? null : [.. results.Extras.Select(ToRatio)]);

    private static BenchRatio ToRatio(Target t) => new(t.Description, t.Workload, t.Figure,
        t.Value is { } v ? Math.Round(v, 3) : null, t.Comparison, t.Limit, t.Met);

    private static double Round(double value) => Math.Round(value, Math.Abs(value) >= 100 ? 1 : 2);

    /// <summary>"&lt;cpu model&gt;, &lt;n&gt; logical cores, &lt;OS&gt;, &lt;runtime&gt;" for this process.</summary>
    public static string DescribeMachine() =>
        $"{CpuModel()}, {Environment.ProcessorCount} logical cores, {OsName()}, "
        + $"{RuntimeInformation.FrameworkDescription} {RuntimeInformation.ProcessArchitecture}";

    private static string CpuModel()
    {
        string? model = ReadField("/proc/cpuinfo", "model name", ':');
        return string.IsNullOrWhiteSpace(model) ? $"unknown {RuntimeInformation.OSArchitecture} CPU" : model;
    }

    private static string OsName()
    {
        string? pretty = ReadField("/etc/os-release", "PRETTY_NAME", '=')?.Trim('"');
        return string.IsNullOrWhiteSpace(pretty)
            ? RuntimeInformation.OSDescription
            : $"{pretty} (kernel {Environment.OSVersion.Version})";
    }

    /// <summary>The value of the first "key SEP value" line of a text file, or null when absent or unreadable.</summary>
    internal static string? ReadField(string path, string key, char separator)
    {
        try
        {
            if (!File.Exists(path))
            {
                return null;
            }

            foreach (string line in File.ReadLines(path))
            {
                int at = line.IndexOf(separator);
                if (at > 0 && line.AsSpan(0, at).Trim().SequenceEqual(key))
                {
                    return line[(at + 1)..].Trim();
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return null;
    }
}

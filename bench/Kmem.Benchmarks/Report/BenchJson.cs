// Report/BenchJson.cs — the machine-readable result file: its shape, the machine description line, and writing it
// with System.Text.Json's source generator (no reflection).
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Kmem.Benchmarks.Report;

/// <summary>One measured figure: <paramref name="Value"/> <paramref name="Unit"/> for a subject on a workload.</summary>
internal sealed record BenchRun(string Workload, string Subject, double Value, string Unit);

/// <summary>The whole result file: where it was measured and every figure.</summary>
internal sealed record BenchReport(string Machine, BenchRun[] Runs);

/// <summary>Source-generated serializer for <see cref="BenchReport"/>.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
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

        File.WriteAllText(path, JsonSerializer.Serialize(report, BenchJsonContext.Default.BenchReport) + "\n");
    }

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
    private static string? ReadField(string path, string key, char separator)
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

// Quick/ChildProcess.cs — starting other processes for the harness: this program again (in a hidden child mode, the
// apphost or `dotnet` plus the dll) and external tools (clang, gcc, valgrind, LSan builds), with a timeout, their
// output collected (and stdout optionally streamed line by line as it arrives).
using System.ComponentModel;
using System.Diagnostics;
using System.Reflection;
using System.Text;

namespace Kmem.Benchmarks.Quick;

/// <summary>What a process run gave: exit code (−1 when it did not run to the end), stdout, stderr, or why it failed.</summary>
internal sealed record ToolRun(int ExitCode, string Output, string ErrorOutput, string? Error)
{
    public bool Ok => ExitCode == 0 && Error is null;
}

internal static class ChildProcess
{
    /// <summary>
    /// How to start this program again: the apphost, or <c>dotnet</c> plus this dll; arguments still to be added.
    /// Null when the process path is unknown.
    /// </summary>
    public static ProcessStartInfo? SelfStartInfo()
    {
        string? processPath = Environment.ProcessPath;
        if (processPath is null)
        {
            return null;
        }

        var start = new ProcessStartInfo(processPath) { UseShellExecute = false };

        // Under an apphost the process is this program; under "dotnet x.dll" it is the host and needs the dll.
        string? entryPath = Assembly.GetEntryAssembly()?.Location;
        if (!string.IsNullOrEmpty(entryPath)
            && !string.Equals(Path.GetFileName(processPath), Path.GetFileNameWithoutExtension(entryPath),
                StringComparison.Ordinal))
        {
            start.ArgumentList.Add(entryPath);
        }

        return start;
    }

    /// <summary>Runs this program with <paramref name="args"/> and extra <paramref name="environment"/>; stderr is shared
    /// with ours, stdout collected and each line passed to <paramref name="onLine"/> as it arrives.</summary>
    public static ToolRun RunSelf(string[] args, IReadOnlyDictionary<string, string>? environment, TimeSpan timeout,
        Action<string>? onLine = null)
    {
        if (SelfStartInfo() is not { } start)
        {
            return new ToolRun(-1, "", "", "no process path to start this program again");
        }

        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach ((string key, string value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        return Run(start, timeout, captureErrors: false, onLine);
    }

    /// <summary>Runs an external tool with both output streams collected.</summary>
    public static ToolRun RunTool(string file, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment,
        TimeSpan timeout)
    {
        var start = new ProcessStartInfo(file) { UseShellExecute = false };
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach ((string key, string value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        return Run(start, timeout, captureErrors: true, onLine: null);
    }

    /// <summary>The first directory on PATH holding <paramref name="command"/>, as a full path; null if none.</summary>
    public static string? FindOnPath(string command) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, command))
            .FirstOrDefault(File.Exists);

    /// <summary>The first line of a tool's output that says "error" or "cannot", else its first line.</summary>
    public static string FirstLine(string text)
    {
        string[] lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.FirstOrDefault(l => l.Contains("error", StringComparison.OrdinalIgnoreCase)
                || l.Contains("cannot", StringComparison.OrdinalIgnoreCase))
            ?? lines.FirstOrDefault()
            ?? "no output";
    }

    private static ToolRun Run(ProcessStartInfo start, TimeSpan timeout, bool captureErrors, Action<string>? onLine)
    {
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = captureErrors;
        var output = new StringBuilder();
        var errors = new StringBuilder();
        string name = Path.GetFileName(start.FileName);
        try
        {
            using var process = new Process { StartInfo = start };
            process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is null)
                {
                    return;
                }

                lock (output)
                {
                    output.Append(e.Data).Append('\n');
                }

                onLine?.Invoke(e.Data);
            };
            if (captureErrors)
            {
                process.ErrorDataReceived += (_, e) =>
                {
                    if (e.Data is not null)
                    {
                        lock (errors)
                        {
                            errors.Append(e.Data).Append('\n');
                        }
                    }
                };
            }

            process.Start();
            process.BeginOutputReadLine();
            if (captureErrors)
            {
                process.BeginErrorReadLine();
            }

            if (!process.WaitForExit(timeout))
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
                return new ToolRun(-1, output.ToString(), errors.ToString(),
                    $"{name} timed out after {timeout.TotalSeconds:F0} s");
            }

            process.WaitForExit(); // drains the redirected streams
            return new ToolRun(process.ExitCode, output.ToString(), errors.ToString(), null);
        }
        catch (Exception e) when (e is Win32Exception or InvalidOperationException)
        {
            return new ToolRun(-1, "", "", $"{name} could not be started: {e.Message}");
        }
    }
}

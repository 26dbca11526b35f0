// Report/RunInfo.cs — the facts about one run that go beside its figures: date (UTC), the library's git commit, the
// command that was run, the load average at the start, and the method (mode, repetitions, pairs).
using System.Diagnostics;
using System.Globalization;

namespace Kmem.Benchmarks.Report;

internal sealed record RunInfo(string DateUtc, string Commit, string Command, string LoadAverage, string Method)
{
    /// <summary>Captures the facts now. <paramref name="args"/> are the program's arguments as given.</summary>
    public static RunInfo Capture(string[] args, string method) => new(
        DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture),
        GitCommit(),
        "dotnet run -c Release --project bench/Kmem.Benchmarks -- " + string.Join(' ', args.Select(Quote)),
        ReadLoadAverage(),
        method);

    private static string Quote(string arg) =>
        arg.Length > 0 && arg.All(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' or '/' or '=' or ':')
            ? arg
            : "'" + arg.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    /// <summary><c>git rev-parse --short HEAD</c> in the current directory, with "+ local changes" when tracked
    /// files differ from it; "unknown" without git or outside a repository.</summary>
    private static string GitCommit()
    {
        string? head = Git("rev-parse", "--short", "HEAD");
        if (string.IsNullOrWhiteSpace(head))
        {
            return "unknown (not in a git checkout)";
        }

        string? changes = Git("status", "--porcelain", "--untracked-files=no");
        return string.IsNullOrWhiteSpace(changes) ? head.Trim() : $"{head.Trim()} + local changes";
    }

    private static string? Git(params string[] args)
    {
        try
        {
            var start = new ProcessStartInfo("git")
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            foreach (string arg in args)
            {
                start.ArgumentList.Add(arg);
            }

            using Process? git = Process.Start(start);
            if (git is null)
            {
                return null;
            }

            string output = git.StandardOutput.ReadToEnd();
            git.StandardError.ReadToEnd();
            git.WaitForExit();
            return git.ExitCode == 0 ? output : null;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return null;
        }
    }

    private static string ReadLoadAverage()
    {
        try
        {
            string[] fields = File.ReadAllText("/proc/loadavg").Split(' ');
            return fields.Length >= 3 ? $"{fields[0]} {fields[1]} {fields[2]}" : "unknown";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "unknown";
        }
    }
}

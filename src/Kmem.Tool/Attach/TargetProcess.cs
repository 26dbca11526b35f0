// Attach/TargetProcess.cs — finding .NET processes and telling whether one has Kmem loaded: the runtime's diagnostic
// sockets in the temp folder ($TMPDIR/dotnet-diagnostic-{pid}-{key}-socket, as the runtime names them) and
// /proc/{pid} (name, command line, and whether Kmem.dll is mapped). Enumerating the sockets ourselves avoids
// DiagnosticsClient.GetPublishedProcesses, which throws in some containers (dotnet/diagnostics#5903). Whether Kmem is
// loaded is known from the maps only for ordinary apps; single-file and Native AOT apps map no Kmem.dll, and another
// user's maps cannot be read: those are "unknown", and a command finds out by asking (KmemClient's probe).
namespace Kmem.Tool.Attach;

/// <summary>A .NET process; HasKmem is null when the maps cannot tell (single-file, Native AOT, another user's).</summary>
internal sealed record TargetInfo(int Pid, string Name, string CommandLine, bool? HasKmem);

internal static class TargetProcess
{
    /// <summary>Every process with a live diagnostic socket, lowest pid first.</summary>
    public static List<TargetInfo> All()
    {
        var pids = new SortedSet<int>(SocketPids("*").Where(pid => Directory.Exists($"/proc/{pid}")));
        return pids.Select(Describe).Where(t => t is not null).Select(t => t!).ToList();
    }

    // The pids named by diagnostic sockets in the temp folder (pid: "*" for all, or one pid).
    private static IEnumerable<int> SocketPids(string pid)
    {
        string tmp = Path.GetTempPath();
        if (!Directory.Exists(tmp))
            yield break;
        foreach (string path in Directory.EnumerateFiles(tmp, $"dotnet-diagnostic-{pid}-*-socket"))
        {
            string[] parts = Path.GetFileName(path).Split('-');
            if (parts.Length >= 4 && int.TryParse(parts[2], out int found))
                yield return found;
        }
    }

    public static TargetInfo? Describe(int pid)
    {
        try
        {
            string name = File.ReadAllText($"/proc/{pid}/comm").Trim();
            string cmd = File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Trim();
            return new TargetInfo(pid, name, cmd, HasKmem(pid));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // gone, or not ours
        }
    }

    private static bool? HasKmem(int pid)
    {
        try
        {
            bool coreLib = false;
            foreach (string line in File.ReadLines($"/proc/{pid}/maps"))
            {
                if (line.EndsWith("/Kmem.dll", StringComparison.Ordinal))
                    return true;
                coreLib |= line.EndsWith("/System.Private.CoreLib.dll", StringComparison.Ordinal);
            }
            return coreLib ? false : null; // assemblies mapped as files, but not Kmem's; or a bundle we cannot see into
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The target for a command that needs Kmem: a clear error when the pid is bad, gone, not .NET or without Kmem.</summary>
    public static TargetInfo Require(int pid)
    {
        if (pid <= 0)
            throw new ToolException($"invalid process id {pid}");
        if (!OperatingSystem.IsLinux())
            throw new ToolException($"attaching is supported on Linux only (this is {System.Runtime.InteropServices.RuntimeInformation.OSDescription})");
        TargetInfo? t = Describe(pid);
        if (t is null)
            throw new ToolException($"no process with id {pid} (or it belongs to another user)");
        if (!SocketPids(pid.ToString()).Any())
            throw new ToolException($"process {pid} ({t.Name}) is not a .NET process with diagnostics enabled");
        if (t.HasKmem == false)
            throw new ToolException($"process {pid} ({t.Name}) has not loaded Kmem");
        return t; // loaded, or unknown: the command's probe decides
    }
}

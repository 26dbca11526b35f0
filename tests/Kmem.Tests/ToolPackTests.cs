// ToolPackTests.cs — dotnet-kmem installs offline: `dotnet pack` of the tool, then `dotnet tool install` from that
// folder alone (a NuGet.config that clears every other source, an empty package cache), and the installed command runs.
using System.Diagnostics;
using Xunit;

namespace Kmem.Tests;

public sealed class ToolPackTests
{
    private static (int Code, string Output) Run(string file, string workDir, Dictionary<string, string>? env, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = workDir };
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        foreach ((string k, string v) in env ?? new())
            psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        Task<string> o = p.StandardOutput.ReadToEndAsync(), e = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(300_000), $"{file} {string.Join(' ', args)} did not finish");
        return (p.ExitCode, o.Result + e.Result);
    }

    private static string RepositoryRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Kmem.slnx")))
                return d.FullName;
        throw new InvalidOperationException("Kmem.slnx not found above " + AppContext.BaseDirectory);
    }

    [Fact]
    public void The_tool_packs_and_installs_from_a_local_folder_with_no_other_source()
    {
        string root = RepositoryRoot();
        string work = Directory.CreateTempSubdirectory("kmem-pack-").FullName;
        try
        {
            string feed = Path.Combine(work, "feed"), tools = Path.Combine(work, "tools"), cache = Path.Combine(work, "packages");
            Directory.CreateDirectory(cache);
            var (code, output) = Run("dotnet", root, null, "pack", "src/Kmem.Tool/Kmem.Tool.csproj", "-c", "Release", "-o", feed, "-p:UseAppHost=true");
            Assert.True(code == 0, output);
            Assert.Single(Directory.GetFiles(feed, "dotnet-kmem.*.nupkg"));
            string config = Path.Combine(work, "NuGet.config");
            File.WriteAllText(config, $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <clear />
                    <add key="local" value="{feed}" />
                  </packageSources>
                </configuration>
                """);
            var env = new Dictionary<string, string> { ["NUGET_PACKAGES"] = cache };
            (code, output) = Run("dotnet", work, env, "tool", "install", "dotnet-kmem", "--tool-path", tools, "--configfile", config);
            Assert.True(code == 0, output);
            Assert.Contains("successfully installed", output);
            (code, output) = Run(Path.Combine(tools, "dotnet-kmem"), work, null, "--help");
            Assert.True(code == 0, output);
            Assert.Contains("leaks", output);
            Assert.Contains("monitor", output);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }
}

// ToolTests.cs — dotnet-kmem end to end: the tool runs as a process against a child process that uses Kmem, and what
// it prints matches what the child says about itself; bad pids, processes without Kmem and bad commands give one clear
// line and a non-zero exit code.
using System.Diagnostics;
using System.Text.Json;
using Xunit;

namespace Kmem.Tests;

public sealed class ToolTests : IDisposable
{
    private readonly Process _target;
    private readonly string _self;

    public ToolTests()
    {
        (_target, _self) = StartTarget("diag-tool-target");
    }

    private static (Process Target, string Self) StartTarget(string scenario)
    {
        Process target = Start(scenario);
        string self = target.StandardOutput.ReadLine() ?? "";
        Assert.Equal("ready", target.StandardOutput.ReadLine());
        return (target, self);
    }

    public void Dispose()
    {
        _target.StandardInput.Close(); // the child ends when its stdin does
        if (!_target.WaitForExit(10_000))
            _target.Kill();
        _target.Dispose();
    }

    private static Process Start(string scenario)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Kmem.Tests.Child.dll"));
        psi.ArgumentList.Add(scenario);
        return Process.Start(psi)!;
    }

    private static (int Code, string Out, string Err) Tool(params string[] args) => RunTool(60_000, args);

    /// <summary>Runs dotnet-kmem with <paramref name="args"/>; fails the test when it takes longer than the timeout.</summary>
    internal static (int Code, string Out, string Err) RunTool(int timeoutMs, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "dotnet-kmem.dll"));
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        Task<string> o = p.StandardOutput.ReadToEndAsync(), e = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(timeoutMs), "dotnet-kmem did not finish");
        return (p.ExitCode, o.Result, e.Result);
    }

    private string Pid => _target.Id.ToString();

    [Fact]
    public void Stat_reports_the_numbers_the_process_reports_about_itself()
    {
        var (code, stdout, stderr) = Tool("stat", "-p", Pid, "--json");
        Assert.True(code == 0, stderr);
        using JsonDocument doc = JsonDocument.Parse(stdout);
        JsonElement served = doc.RootElement.GetProperty("types").EnumerateArray().Single(t => t.GetProperty("Type").GetString() == "served");
        Assert.Equal(_self, $"self: inuse={served.GetProperty("InUse").GetInt64()} memuse={served.GetProperty("MemUse").GetInt64()} requests={served.GetProperty("Requests").GetInt64()}");
        Assert.Contains("Memory statistics by type", doc.RootElement.GetProperty("vmstat").GetString());
        // Two types named "dup": two rows, told apart by index.
        var dups = doc.RootElement.GetProperty("types").EnumerateArray().Where(t => t.GetProperty("Type").GetString() == "dup").ToList();
        Assert.Equal(2, dups.Select(t => t.GetProperty("Index").GetInt32()).Distinct().Count());
        Assert.Equal(new long[] { 1, 2 }, dups.Select(t => t.GetProperty("InUse").GetInt64()).Order());

        (code, stdout, stderr) = Tool("stat", "-p", Pid);
        Assert.True(code == 0, stderr);
        Assert.Matches(@"served\s*│\s*13\s*│\s*1264 B", stdout);
        Assert.Contains("Memory statistics by bucket size", stdout);
    }

    [Fact]
    public void Leaks_with_scan_finds_the_three_leaked_blocks_and_fails_on_request()
    {
        var (code, stdout, stderr) = Tool("leaks", "-p", Pid, "--scan", "--json", "--fail-on-leak");
        Assert.True(code == 23, $"exit {code}: {stderr}");
        using JsonDocument doc = JsonDocument.Parse(stdout);
        var leaks = doc.RootElement.GetProperty("leaks").EnumerateArray().ToList();
        var served = leaks.Where(l => l.GetProperty("Type").GetString() == "served").ToList();
        Assert.Equal(3, served.Count(l => l.GetProperty("Size").GetInt64() == 48));
        Assert.All(served, l => Assert.Contains("LeakThree", l.GetProperty("Site").GetString()));
        JsonElement pooled = Assert.Single(leaks, l => l.GetProperty("Type").GetString() == "pooled");
        Assert.Equal(256, pooled.GetProperty("Size").GetInt64());
        Assert.Contains("DropPoolOwner", pooled.GetProperty("Site").GetString());
        string report = doc.RootElement.GetProperty("report").GetString()!;
        Assert.StartsWith("Direct leak of 144 byte(s) in 3 object(s) of type served", report);
        Assert.Contains("1 memory pool buffer(s) collected without Dispose", report);
        Assert.Contains("unreferenced object 0x", report);

        (code, stdout, _) = Tool("leaks", "-p", Pid); // what the last scan found, without --fail-on-leak
        Assert.Equal(0, code);
        Assert.Contains("SUMMARY: 144 byte(s) leaked in 3 allocation(s).", stdout);
        Assert.Contains("memory pool buffer of type pooled collected without Dispose", stdout);
    }

    [Fact]
    public void Ctl_runs_kmemleak_commands_and_reports_a_refused_one_in_one_line()
    {
        var (code, stdout, stderr) = Tool("ctl", "-p", Pid, "clear");
        Assert.True(code == 0, stderr);
        (code, stdout, stderr) = Tool("ctl", "-p", Pid, "verify");
        Assert.True(code == 0, stderr);
        Assert.Matches(@"^verify: \d+ allocated, \d+ listed free and \d+ quarantined blocks in \d+ slabs .* leak records checked, 0 problem\(s\)\n$", stdout);
        (code, _, stderr) = Tool("ctl", "-p", Pid, "scan=60"); // a command with a value
        Assert.True(code == 0, stderr);
        (code, _, stderr) = Tool("ctl", "-p", Pid, "scan=off");
        Assert.True(code == 0, stderr);
        (code, stdout, stderr) = Tool("ctl", "-p", Pid, "no-such-command");
        Assert.Equal(1, code);
        Assert.Equal("dotnet-kmem: error: 'no-such-command' failed in the target: unknown kmemleak command 'no-such-command'\n", stderr.Replace("\r", ""));
    }

    [Fact]
    public void Ps_lists_the_process_and_monitor_shows_its_types()
    {
        var (code, stdout, stderr) = Tool("ps");
        Assert.True(code == 0, stderr);
        Assert.Contains(Pid, stdout);
        Assert.Contains("diag-tool-target", stdout);
        (code, stdout, stderr) = Tool("monitor", "-p", Pid, "--duration", "1");
        Assert.True(code == 0, stderr);
        Assert.Matches(@"served\s*│\s*13\s*│\s*1264 B\s*│\s*│", stdout); // the first table has no changes to show
    }

    [Fact]
    public void A_command_that_fails_inside_the_target_is_reported_and_the_target_lives_on()
    {
        (Process target, _) = StartTarget("diag-tool-throwing");
        try
        {
            string pid = target.Id.ToString();
            var (code, _, stderr) = Tool("ctl", "-p", pid, "scan"); // the first scan reports nothing: no message
            Assert.True(code == 0, stderr);
            (code, _, stderr) = Tool("ctl", "-p", pid, "scan");     // this one publishes "… new suspected memory leaks"
            Assert.Equal(1, code);
            Assert.Equal("dotnet-kmem: error: 'scan' failed in the target: IOException: a handler that fails\n", stderr.Replace("\r", ""));
            Assert.False(target.HasExited);
            (code, _, stderr) = Tool("stat", "-p", pid);
            Assert.True(code == 0, stderr);
        }
        finally
        {
            target.StandardInput.Close();
            if (!target.WaitForExit(10_000))
                target.Kill();
            target.Dispose();
        }
    }

    [Fact]
    public void A_target_that_exits_in_the_middle_of_a_command_is_reported_as_gone()
    {
        (Process target, _) = StartTarget("diag-tool-dying");
        using (target)
        {
            string pid = target.Id.ToString();
            var (code, _, stderr) = Tool("ctl", "-p", pid, "scan");          // primes the checksums: no message
            Assert.True(code == 0, stderr);
            (code, _, stderr) = Tool("ctl", "-p", pid, "scan", "--timeout", "120"); // reports leaks: the target exits
            Assert.True(target.WaitForExit(60_000));
            Assert.Equal(1, code);
            Assert.Equal($"dotnet-kmem: error: process {pid} exited before it answered 'scan'\n", stderr.Replace("\r", ""));
        }
    }

    [Fact]
    public void A_bad_pid_a_process_without_kmem_and_an_unknown_command_each_get_one_clear_line()
    {
        var (code, stdout, stderr) = Tool("stat", "-p", "999999");
        Assert.Equal(1, code);
        Assert.Equal("dotnet-kmem: error: no process with id 999999 (or it belongs to another user)\n", stderr.Replace("\r", ""));

        using Process plain = Start("plain-wait");
        Assert.Equal("ready", plain.StandardOutput.ReadLine());
        Thread.Sleep(200); // the runtime's diagnostic socket is made at start-up
        (code, _, stderr) = Tool("leaks", "-p", plain.Id.ToString());
        plain.StandardInput.Close();
        plain.WaitForExit(10_000);
        Assert.Equal(1, code);
        Assert.Equal($"dotnet-kmem: error: process {plain.Id} (dotnet) has not loaded Kmem\n", stderr.Replace("\r", ""));

        (code, _, stderr) = Tool("frobnicate");
        Assert.NotEqual(0, code);
        Assert.Contains("frobnicate", stderr + stdout);
    }
}

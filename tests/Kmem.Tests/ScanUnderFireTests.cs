// ScanUnderFireTests.cs — runs the child's "fire-scan" scenario: 30 whole-process leak scans while threads map, unmap
// and protect memory and short-lived threads allocate blocks kept in a registered root; checks how the child ended.
using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace Kmem.Tests;

public sealed class ScanUnderFireTests(ITestOutputHelper output)
{
    [Fact]
    public void Every_scan_completes_and_no_reachable_block_is_reported_while_mappings_and_threads_churn()
    {
        (int code, string stdout, string stderr) = ChildProcess.Run("fire-scan");
        output.WriteLine(stdout);
        Assert.True(code == 0, $"exit code {code}\nstdout: {stdout}\nstderr: {stderr}");
        Match m = Regex.Match(stdout, @"fire: scans=30 kept=(\d+) kept-checks=(\d+) threads=(\d+) blocks=(\d+) mappings=(\d+) reported=(\d+) unreadable-bytes=(\d+)");
        Assert.True(m.Success, stdout);
        Assert.True(long.Parse(m.Groups[1].Value) > 0, "some blocks were kept reachable");
        Assert.True(long.Parse(m.Groups[3].Value) > 0, "short-lived threads ran");
        Assert.True(long.Parse(m.Groups[5].Value) > 0, "mappings churned");
        Assert.EndsWith("ok\n", stdout.Replace("\r", ""));
    }
}

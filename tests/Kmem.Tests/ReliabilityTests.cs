// ReliabilityTests.cs — Heap.Verify, failure injection and the stress command (issue #9). Verify's cases and the
// injection workload run in a child process (a heap of known contents, settings changed freely); the 20-second stress
// run is the tool's own command, alone in the non-parallel collection.
using System.Diagnostics;
using Xunit;

namespace Kmem.Tests;

public sealed class ReliabilityTests
{
    [Fact]
    public void Verify_is_empty_on_a_busy_healthy_heap_and_reports_each_kind_of_corruption()
    {
        var (code, stdout, stderr) = ChildProcess.Run("rel-verify");
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        string o = stdout.Replace("\r", "");
        foreach (string clean in new[] { "healthy", "owner restored", "statistics restored", "links restored", "record removed", "all restored", "all freed" })
            Assert.Contains($"\n{clean}: 0\n", "\n" + o);
        Assert.Matches(@"owner zeroed: 2\n  block 0x[0-9a-f]+ of size \d+ is neither allocated nor on a free list \(lost\)\n  type rel-a: statistics say (\d+) blocks, \d+ bytes in use; its live blocks are \d+", o);
        Assert.Matches(@"statistics off by one: 1\n  type rel-a: statistics say \d+ blocks", o);
        Assert.Matches(@"link into an allocated block: \d+\n  block 0x[0-9a-f]+ of size 48 is on a thread's bin but allocated \(owner rel-a\)", o);
        Assert.Matches(@"free-list cycle: \d+\n  a thread's bin of size 48 reaches 0x[0-9a-f]+ a second time", o);
        Assert.Matches(@"record of a freed block: 1\n  the leak detector tracks Large object 0x[0-9a-f]+ \(rel-a\), which is not allocated", o);
        Assert.Matches(@"page-map tail: 1\n  unit \d+ should be a LargeTail of unit \d+", o);
        Assert.Matches(@"flat class byte: 1\n  unit \d+: the flat slab-class byte says class \d+ but the page map says Slab", o);
        Assert.Matches(@"write after free: 1\n  block 0x[0-9a-f]+ of size 160 was written after free", o);
        Assert.Matches(@"redzone overrun: 1\n  redzoned block 0x[0-9a-f]+ of size 160 \(type rel-diag\) has 0 byte\(s\) changed before it and 1 after it", o);
        Assert.Contains("stats: 0 0 0 0", o);
    }

    [Fact]
    public void New_slabs_and_their_side_tables_and_scan_bitmaps_add_almost_no_kernel_mappings()
    {
        // Linux allows 65,530 mappings per process: metadata committed piece by piece would run out of them long before
        // the memory does (958 new mappings for these 96 slabs when each column was committed on its own).
        if (!OperatingSystem.IsLinux())
            return;
        var (code, stdout, stderr) = ChildProcess.Run("rel-mappings");
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        var m = System.Text.RegularExpressions.Regex.Match(stdout, @"new mappings: (-?\d+)");
        Assert.True(m.Success, stdout);
        Assert.True(int.Parse(m.Groups[1].Value) < 24, stdout);
    }

    [Fact]
    public void Callers_and_Kmems_own_paths_survive_injected_NoWait_and_page_failures()
    {
        var (code, stdout, stderr) = ChildProcess.Run("rel-inject");
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("gate while injecting: 1", stdout);  // every malloc takes the checked path while it is on
        Assert.Contains("gate after: 0", stdout);            // and the fast path again once it is off
        var m = System.Text.RegularExpressions.Regex.Match(stdout, @"injected nowait=(\d+) pages=(\d+) waitok-nulls=(\d+) nulls=(\d+)");
        Assert.True(m.Success, stdout);
        Assert.True(long.Parse(m.Groups[1].Value) > 0 && long.Parse(m.Groups[2].Value) > 0, stdout);
        Assert.Equal("0", m.Groups[3].Value);                // WaitOk never fails from injection
        Assert.Contains("verify with blocks live: 0\n", stdout.Replace("\r", ""));
        Assert.Contains("live: True True", stdout);          // statistics exact after the failures
        Assert.Contains("verify after freeing: 0\n", stdout.Replace("\r", ""));
        Assert.Contains("stats: 0 0 0", stdout);
    }

    [Fact]
    public void KMEM_FAIL_NOWAIT_fails_every_nth_NoWait_malloc_and_counts_it()
    {
        var (code, stdout, stderr) = ChildProcess.Run("rel-inject-env", ("KMEM_FAIL_NOWAIT", "4"), ("KMEM_FAIL_PAGES", "x"));
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("every: 4 0", stdout); // a value that is not a number is ignored
        Assert.Contains("nulls: 3 of 12, counted 3", stdout);
    }
}

/// <summary>Settings on the live process, and the stress run: alone, after the parallel tests.</summary>
[Collection(GlobalStateCollection.Name)]
public sealed class ReliabilityGlobalTests
{
    [Fact]
    public void NoWait_injection_sends_mallocs_to_the_checked_path_only_while_it_is_on()
    {
        var t = Types.New();
        Assert.Equal(0, t.AllocGate);
        try
        {
            KmemOptions.FailNoWaitEvery = 2;
            Assert.Equal(1, t.AllocGate);
            Assert.Throws<ArgumentOutOfRangeException>(() => KmemOptions.FailNoWaitEvery = -1);
            Assert.Throws<ArgumentOutOfRangeException>(() => KmemOptions.FailPageRequestsEvery = -1);
        }
        finally
        {
            KmemOptions.FailNoWaitEvery = 0;
        }
        Assert.Equal(0, t.AllocGate);
    }

    [Fact]
    public void A_twenty_second_stress_run_finds_no_corruption_no_false_leak_and_a_clean_heap()
    {
        (int code, string stdout, string stderr) = ToolTests.RunTool(300_000, "stress", "--seconds", "20", "--threads", "2", "--seed", "9", "--fail-nowait", "13", "--fail-pages", "7");
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        Assert.Contains("corruptions found: 0", stdout);
        Assert.Contains("false leak reports (reachable objects): 0", stdout);
        var verify = System.Text.RegularExpressions.Regex.Match(stdout, @"Heap.Verify: (\d+) runs, 0 problem\(s\)");
        Assert.True(verify.Success && int.Parse(verify.Groups[1].Value) >= 3, stdout); // checkpoints, end, after freeing
        Assert.Matches(@"injected failures survived: [1-9][\d,]* NoWait, [1-9][\d,]* page requests", stdout);
        Assert.Contains("stress: PASS", stdout);
    }
}

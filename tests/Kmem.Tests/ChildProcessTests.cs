// ChildProcessTests.cs — behaviour that ends a process (fail-fast panics) or needs a fresh one (kmem_map size), in a child.
using System.Diagnostics;
using Xunit;

namespace Kmem.Tests;

public class ChildProcessTests
{
    [Fact]
    public void By_default_a_panic_throws_and_the_program_can_catch_it()
    {
        var (code, stdout, _) = ChildProcess.Run("double-free");
        Assert.Equal(0, code);
        Assert.Contains("caught: free: duplicated free", stdout);
    }

    [Fact]
    public void KMEM_PANIC_failfast_ends_the_process_with_the_panic_message()
    {
        var (code, stdout, stderr) = ChildProcess.Run("double-free", ("KMEM_PANIC", "failfast"));
        Assert.NotEqual(0, code);
        Assert.Equal(134, code); // SIGABRT: Environment.FailFast
        Assert.DoesNotContain("caught", stdout);
        Assert.Contains("panic: free: duplicated free", stderr);
    }

    [Theory]
    [InlineData("guard-before")]
    [InlineData("guard-after")]
    public void A_write_into_a_vmalloc_guard_page_kills_the_process_with_a_fault(string scenario) =>
        FaultAssert.DiedOfFault(ChildProcess.Run(scenario), "area ok");

    [Fact]
    public void After_off_kmemleak_refuses_everything_but_clear()
    {
        var (code, stdout, stderr) = ChildProcess.Run("kmemleak-off");
        Assert.True(code == 0, stderr);
        Assert.Contains("enabled=False", stdout);
        foreach (string c in new[] { "scan", "stack=on", "minage=0", "off" })
            Assert.Contains($"refused {c}", stdout);
        Assert.Contains("refused Scan()", stdout);
        Assert.Contains("clear ok", stdout);
        Assert.Contains("kmemleak: Kernel memory leak detector disabled", stderr);
    }

    [Fact]
    public void Calls_on_unknown_addresses_are_silent_unless_KMEMLEAK_DEBUG()
    {
        var (code, stdout, _) = ChildProcess.Run("kmemleak-debug");
        Assert.Equal(0, code);
        Assert.DoesNotContain("unknown object", stdout);
        (code, stdout, _) = ChildProcess.Run("kmemleak-debug", ("KMEMLEAK_DEBUG", "1"));
        Assert.Equal(0, code);
        Assert.Matches("kmemleak: Trying to color unknown object at 0x[0-9a-f]+ as Grey", stdout);
        Assert.Matches("kmemleak: Freeing unknown object at 0x[0-9a-f]+", stdout);
        Assert.Matches("kmemleak: Trying to color unknown object at 0x[0-9a-f]+ as Black", stdout);
        Assert.Matches("kmemleak: Not scanning unknown object at 0x[0-9a-f]+", stdout);
    }

    [Fact]
    public void KMEMLEAK_off_in_the_environment_disables_tracking_from_the_start()
    {
        var (code, stdout, _) = ChildProcess.Run("kmemleak-env-off", ("KMEMLEAK", "off"));
        Assert.Equal(0, code);
        Assert.Contains("enabled=False", stdout);
        (code, stdout, _) = ChildProcess.Run("kmemleak-env-off");
        Assert.Contains("enabled=True", stdout);
    }

    [Fact]
    public void KMEM_MAP_SIZE_is_the_ceiling_of_the_whole_heap()
    {
        var (code, stdout, stderr) = ChildProcess.Run("map-size", ("KMEM_MAP_SIZE", "64M"));
        Assert.NotEqual(0, code);
        Assert.Contains("blocks=4", stdout); // 64 MiB of kmem_map holds exactly four 16 MiB blocks
        Assert.Contains("malloc: out of space in kmem_map", stderr);
    }
}

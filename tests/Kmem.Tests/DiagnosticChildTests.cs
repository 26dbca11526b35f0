// DiagnosticChildTests.cs — DIAGNOSTIC cases run in a child process: guard pages must kill the process at the faulting
// access, MINBUCKET is checked when Kmem starts, and a leak scan sees through the quarantine and the allocation log.
using Xunit;

namespace Kmem.Tests;

public sealed class DiagnosticChildTests
{
    [Theory]
    [InlineData("diag-guard-overflow")]
    [InlineData("diag-guard-underflow")]
    [InlineData("diag-guard-use-after-free")]
    public void A_guarded_block_faults_at_once_on_overflow_underflow_and_use_after_free(string scenario) =>
        FaultAssert.DiedOfFault(ChildProcess.Run(scenario), "in bounds ok, page end True");

    [Fact]
    public void Every_setting_is_read_from_the_environment_at_start()
    {
        var (code, stdout, stderr) = ChildProcess.Run("diag-env", ("KMEM_DIAGNOSTIC", "full"), ("KMEM_REDZONES", "0"),
            ("KMEM_QUARANTINE", "2"), ("KMEM_MALLOCLOG", "0"), ("KMEM_GUARD", "guarded:100-200"));
        Assert.True(code == 0, stderr);
        Assert.Contains("diagnostic=True poison=Full redzones=False quarantine=2 log=0", stdout);
        Assert.Contains("guarded at page end=True", stdout);
        Assert.Contains("plain 16-byte offset=True", stdout); // no redzone: the block itself, 64-aligned in its slab
        Assert.Matches(@"messages=Data modified on freelist: word 15 of object 0x[0-9a-f]+ size 64 previous type other \(0xdeadbe00 != 0xdeadbeef\)\n", stdout.Replace("\r", ""));
    }

    [Fact]
    public void A_smallest_bucket_too_small_for_the_free_list_panics_at_start_every_time()
    {
        var (code, stdout, stderr) = ChildProcess.Run("diag-minbucket", ("KMEM_MINBUCKET", "3"));
        Assert.True(code == 0, stderr);
        Assert.Equal(
            "caught: init: minbucket too small/struct freelist too big\ncaught: init: minbucket too small/struct freelist too big\n",
            stdout.Replace("\r", ""));
    }

    [Fact]
    public void A_larger_smallest_bucket_rounds_small_requests_up_to_it()
    {
        var (code, stdout, stderr) = ChildProcess.Run("diag-minbucket-64", ("KMEM_MINBUCKET", "6"));
        Assert.True(code == 0, stderr);
        Assert.Contains("before start roundup(1)=64", stdout);
        Assert.Contains("roundup(1)=64 roundup(100)=112", stdout);
    }

    [Theory]
    [InlineData("16")]
    [InlineData("31")]
    [InlineData("x")]
    public void A_smallest_bucket_out_of_range_is_reported_and_the_default_kept(string value)
    {
        var (code, stdout, stderr) = ChildProcess.Run("diag-minbucket-64", ("KMEM_MINBUCKET", value));
        Assert.True(code == 0, stderr);
        Assert.Contains("roundup(1)=16 roundup(100)=112", stdout);
        Assert.Contains($"KMEM_MINBUCKET={value} ignored: it must be 0 to 15", stderr);
    }

    [Fact]
    public void Leaked_blocks_stay_visible_to_the_leak_scan_through_the_quarantine_the_log_and_guard_pages()
    {
        var (code, stdout, stderr) = ChildProcess.Run("diag-leaks");
        Assert.True(code == 0 && stdout.Contains("ok", StringComparison.Ordinal), $"exit {code}\n{stdout}\n{stderr}");
    }
}

/// <summary>The leak detector's view of DIAGNOSTIC blocks (in the leak tests' collection: it scans the heap).</summary>
[Collection(KmemleakCollection.Name)]
public sealed unsafe class DiagnosticLeakReportTests
{
    public DiagnosticLeakReportTests() => Leaks.Reset();

    [Fact]
    public void A_leaked_redzoned_block_is_reported_dumped_and_painted_by_the_address_and_size_its_caller_knows()
    {
        var t = Types.New();
        t.Diagnostic = true;
        try
        {
            byte* p = (byte*)Heap.Malloc(100, t);
            byte* child = (byte*)Heap.Malloc(40, t);
            *(void**)p = child;                                  // p's contents refer to child
            byte* ignored = (byte*)Heap.Malloc(24, t);
            Kmemleak.Ignore(ignored);                            // found by the caller's address
            LeakScanResult r = Leaks.ScanTwice();
            LeakReport leak = Assert.Single(r.Leaks, l => l.Type == t.ShortDesc && l.Direct);
            Assert.Equal((nuint)p, leak.Address);
            Assert.Equal((nuint)100, leak.Size);
            Assert.Contains(r.Leaks, l => l.Address == (nuint)child && l.Size == 40 && !l.Direct);
            Assert.DoesNotContain(r.Leaks, l => l.Address == (nuint)ignored);
            Assert.Contains($"unreferenced object 0x{(nuint)p:x} (size 100):", Kmemleak.Read());
            Assert.StartsWith($"Object 0x{(nuint)p:x} (size 100):", Kmemleak.Write($"dump=0x{(nuint)p + 50:x}"));
            Kmemleak.Write("clear");
            Heap.Free(p, t);
            Heap.Free(child, t);
            Heap.Free(ignored, t);
        }
        finally
        {
            t.Diagnostic = false;
        }
    }

    [Fact]
    public void A_guarded_block_is_reported_as_a_block_and_the_kmemleak_api_paints_it_instead_of_unregistering_it()
    {
        var t = Types.New();
        KmemOptions.SetGuardPages(t, 1, 4096);
        try
        {
            byte* p = (byte*)Heap.Malloc(100, t);
            LeakReport leak = Assert.Single(Leaks.ScanTwice().Leaks, l => l.Address == (nuint)p);
            Assert.Equal(LeakObjectKind.Block, leak.Kind);
            Assert.Equal((nuint)100, leak.Size);
            Assert.Throws<ArgumentException>(() => Kmemleak.FreePart(p + 16, 16));
            Kmemleak.Free(p); // like a Kmem block: no longer reported, still the allocator's
            Assert.DoesNotContain(Leaks.ScanTwice().Leaks, l => l.Address == (nuint)p);
            Heap.Free(p, t);
            Assert.Equal(0, t.GetStats().MemUse);
            Kmemleak.Write("clear");
        }
        finally
        {
            KmemOptions.ClearGuardPages();
        }
    }
}

// ProcessRootsTests.cs — kmemleak's process roots, each case in a fresh child process (Kmem.Tests.Child,
// ProcessRootScenarios.cs): in the test host, other tests' dangling pointers and stale stack slots could hold any address.
using Xunit;
using Xunit.Abstractions;

namespace Kmem.Tests;

public class ProcessRootsTests(ITestOutputHelper output)
{
    // A scan is conservative: now and then some unrelated word (in the C heap, a live stack slot) equals the address of
    // the block a scenario leaks, and the block is not reported. Such a miss ("FAIL: missed: ...", with where the word
    // was) gets the scenario one more run in a fresh child, which must pass; it is written to the test's output. On
    // 2026-12-01 a miss came in about 1 of 10 runs of this class, the same before and after that day's scanner changes.
    // Any other failure, or a second miss, fails the test. This covers roots-self too (the no-raw-address rule): a
    // regression that makes Kmem's own bookkeeping hold an address every time still fails there twice; one that does it
    // only now and then would show less often.
    private void Passes(string scenario)
    {
        var (code, stdout, stderr) = ChildProcess.Run(scenario);
        if (code != 0 && stdout.Contains("FAIL: missed:", StringComparison.Ordinal))
        {
            output.WriteLine($"first run missed a report; running once more:\n{stdout}");
            (code, stdout, stderr) = ChildProcess.Run(scenario);
        }
        Assert.True(code == 0 && stdout.Contains("ok", StringComparison.Ordinal), $"exit {code}\n{stdout}\n{stderr}");
    }

    [Fact]
    public void Process_roots_are_on_by_default_on_linux_and_gc_and_process_switch_them() => Passes("roots-defaults");

    [Fact]
    public void A_field_of_a_live_managed_object_keeps_its_block_until_the_field_is_cleared() => Passes("roots-field");

    [Fact]
    public void Memory_from_another_native_heap_keeps_its_target_alive() => Passes("roots-native");

    [Fact]
    public void A_local_on_a_live_threads_stack_is_a_root_with_stack_on_and_not_with_stack_off() => Passes("roots-stack");

    [Fact]
    public void Scans_complete_while_another_thread_maps_unmaps_and_protects_memory() => Passes("roots-mapping-churn");

    [Fact]
    public void Registered_foreign_memory_unmapped_behind_the_detectors_back_is_skipped_not_a_crash() =>
        Passes("roots-foreign-unmapped");

    [Fact]
    public void Read_survives_a_reported_foreign_object_made_inaccessible() => Passes("roots-read-after-protect");

    [Fact]
    public void A_pointer_the_caller_of_Scan_keeps_across_scans_is_never_reported() => Passes("roots-caller-register");

    [Fact]
    public void A_running_threads_stack_is_known_so_stack_off_leaves_it_out() => Passes("roots-running-thread");

    [Fact]
    public void The_detectors_own_bookkeeping_never_makes_a_leak_look_referenced() => Passes("roots-self");

    [Fact]
    public void A_structure_mutated_by_other_threads_through_200_scans_is_never_reported_with_default_settings() =>
        Passes("roots-mutation");
}

// KmemleakApiTests.cs — the effect of each registration call and each command, and the false-report defences.
using System.Runtime.InteropServices;
using Xunit;

namespace Kmem.Tests;

[Collection(KmemleakCollection.Name)]
public unsafe class KmemleakApiTests
{
    public KmemleakApiTests() => Leaks.Reset();

    private static bool Reported(LeakScanResult r, void* p) => r.Leaks.Any(l => l.Address == (nuint)p);

    [Fact]
    public void Ignore_NotLeak_and_NoScan_change_what_is_reported()
    {
        var t = Types.New();
        void* ignored = Heap.Malloc(64, t);
        void* notLeak = Heap.Malloc(64, t);
        void* child = Heap.Malloc(64, t);
        *(void**)notLeak = child;         // a not-leak object is a root: what it points to is referenced
        void* noScan = Heap.Malloc(64, t);
        void* hidden = Heap.Malloc(64, t);
        *(void**)noScan = hidden;         // a no-scan object's contents do not count
        using var root = new RootTable(1);
        root[0] = (nint)noScan;
        Kmemleak.Ignore(ignored);
        Kmemleak.NotLeak(notLeak);
        Kmemleak.NoScan(noScan);
        LeakScanResult r = Leaks.ScanTwice();
        Assert.False(Reported(r, ignored));
        Assert.False(Reported(r, notLeak));
        Assert.False(Reported(r, child));
        Assert.False(Reported(r, noScan));
        Assert.True(Reported(r, hidden));
        Kmemleak.Write("clear");
    }

    [Fact]
    public void ScanArea_limits_scanning_to_the_areas()
    {
        var t = Types.New();
        nint* holder = (nint*)Heap.Malloc(64, t);
        void* inArea = Heap.Malloc(16, t), outside = Heap.Malloc(16, t);
        holder[1] = (nint)inArea;
        holder[5] = (nint)outside;
        Kmemleak.NotLeak(holder);
        Kmemleak.ScanArea(holder + 1, 8);
        Assert.Throws<ArgumentException>(() => Kmemleak.ScanArea(holder + 4, 64)); // past the end
        LeakScanResult r = Leaks.ScanTwice();
        Assert.False(Reported(r, inArea));
        Assert.True(Reported(r, outside));
        Kmemleak.Write("clear");
    }

    [Fact]
    public void Foreign_memory_registration_FreePart_and_overlaps()
    {
        var t = Types.New();
        nint* foreign = (nint*)NativeMemory.AllocZeroed(64);
        try
        {
            Kmemleak.Alloc(foreign, 64, 0); // a root
            void* a = Heap.Malloc(16, t), b = Heap.Malloc(16, t);
            foreign[0] = (nint)a;
            foreign[6] = (nint)b;
            Assert.Throws<ArgumentException>(() => Kmemleak.Alloc(foreign + 2, 8, 1));   // overlaps
            Assert.Throws<ArgumentException>(() => Kmemleak.Alloc(a, 16, 1));            // Kmem memory
            Assert.Throws<ArgumentOutOfRangeException>(() => Kmemleak.Alloc(foreign, 64, -2));
            Assert.Contains("Object 0x", Kmemleak.Write($"dump=0x{(nuint)(foreign + 3):x}"));
            LeakScanResult r = Leaks.ScanTwice();
            Assert.False(Reported(r, a));
            Assert.False(Reported(r, b));
            Kmemleak.FreePart(foreign + 4, 32); // [32, 64) is no longer a root: b loses its reference
            Assert.Contains("Object 0x", Kmemleak.Write($"dump=0x{(nuint)foreign:x}"));
            Assert.Throws<ArgumentException>(() => Kmemleak.Write($"dump=0x{(nuint)(foreign + 6):x}"));
            r = Leaks.ScanTwice();
            Assert.False(Reported(r, a));
            Assert.True(Reported(r, b));
            // Foreign objects with min_count 1 are reported like any other.
            void* lone = NativeMemory.Alloc(32);
            Kmemleak.Alloc(lone, 32, 1);
            r = Leaks.ScanTwice();
            Assert.Contains(r.Leaks, l => l.Address == (nuint)lone && l.Kind == LeakObjectKind.Foreign);
            Kmemleak.Free(lone);
            NativeMemory.Free(lone);
            Kmemleak.Free(foreign);
        }
        finally
        {
            NativeMemory.Free(foreign);
        }
        Kmemleak.Write("clear");
    }

    [Fact]
    public void Per_cpu_objects_are_found_by_their_cookie_only()
    {
        var t = Types.New();
        using var root = new RootTable(2);
        PerCpuPtr byCookie = Heap.AllocPercpu(32, 8, t), byCopy = Heap.AllocPercpu(32, 8, t);
        root[0] = (nint)byCookie.Cookie + 8; // interior of CPU 0's copy counts
        root[1] = (nint)byCopy.ForCpu(PerCpuPtr.Copies - 1);
        LeakScanResult r = Leaks.ScanTwice();
        Assert.False(Reported(r, byCookie.Cookie));
        Assert.Equal(PerCpuPtr.Copies > 1, Reported(r, byCopy.Cookie));
        Heap.FreePercpu(byCookie, t);
        Heap.FreePercpu(byCopy, t);
        Kmemleak.Write("clear");
    }

    [Fact]
    public void A_vmalloc_area_needs_two_references_one_being_its_descriptor()
    {
        var t = Types.New();
        using var root = new RootTable(2);
        void* held = Heap.Vmalloc(10_000, t), dropped = Heap.Vmalloc(10_000, t);
        root[0] = (nint)held + 100;
        VmArea area = Heap.FindVmArea(dropped)!.Value;
        root[1] = (nint)area.Descriptor; // a pointer to the descriptor counts for the area (excess_ref)
        void* alone = Heap.Vmalloc(100, t);
        LeakScanResult r = Leaks.ScanTwice();
        Assert.False(Reported(r, held));
        Assert.False(Reported(r, dropped));
        Assert.True(Reported(r, alone));
        Assert.DoesNotContain(r.Leaks, l => l.Type == "vmarea");
        Heap.Vfree(held);
        Heap.Vfree(dropped);
        Heap.Vfree(alone);
        Kmemleak.Write("clear");
    }

    [Fact]
    public void Physical_objects_are_roots_while_mapped_and_reported_with_min_count_one()
    {
        var t = Types.New();
        using PhysRegion region = PhysRegion.Create(8192);
        region.Map();
        ulong rootPhys = region.Alloc(64), lonePhys = region.Alloc(64);
        void* child = Heap.Malloc(32, t);
        *(nint*)Heap.PhysToVirt(rootPhys) = (nint)child;
        Kmemleak.AllocPhys(rootPhys, 64, 0);
        Kmemleak.AllocPhys(lonePhys, 64, 1);
        LeakScanResult r = Leaks.ScanTwice();
        Assert.False(Reported(r, child));
        Assert.Contains(r.Leaks, l => l.Kind == LeakObjectKind.Phys && l.Address == (nuint)lonePhys);
        Assert.Contains("unreferenced object (phys) 0x", Kmemleak.Read());
        ulong heldPhys = region.Alloc(64);
        Kmemleak.AllocPhys(heldPhys, 64, 1);
        using var holder = new RootTable(1);
        holder[0] = (nint)heldPhys + 8; // a word holding a physical address inside it refers to it
        r = Leaks.ScanTwice();
        Assert.DoesNotContain(r.Leaks, l => l.Kind == LeakObjectKind.Phys && l.Address == (nuint)heldPhys);
        Kmemleak.IgnorePhys(lonePhys);
        Kmemleak.FreePartPhys(heldPhys, 64);
        region.Unmap(); // unmapped: not scanned, so the child loses its only reference
        r = Leaks.ScanTwice();
        Assert.True(Reported(r, child));
        Assert.DoesNotContain(r.Leaks, l => l.Kind == LeakObjectKind.Phys);
        Kmemleak.FreePartPhys(rootPhys, 64);
        Kmemleak.FreePartPhys(lonePhys, 64);
        Heap.Free(child, t);
        Kmemleak.Write("clear");
    }

    [Fact]
    public void Defences_minimum_age_checksum_report_once_clear_and_unref_scans()
    {
        var t = Types.New();
        nint* p = (nint*)Heap.Malloc(64, t);

        Kmemleak.Write("minage=600000");
        Assert.False(Reported(Leaks.ScanTwice(), p)); // too young
        Kmemleak.Write("minage=0");

        Kmemleak.TransientLeak(p);
        Assert.False(Reported(Kmemleak.Scan(), p)); // checksum reset: changed, so gray for this scan
        p[3] = 42;                                   // contents changed since the last scan
        Assert.False(Reported(Kmemleak.Scan(), p));
        LeakScanResult r = Kmemleak.Scan();          // unchanged: reported, once
        Assert.Contains(r.NewLeaks, l => l.Address == (nuint)p);
        r = Kmemleak.Scan();
        Assert.Contains(r.Leaks, l => l.Address == (nuint)p);
        Assert.DoesNotContain(r.NewLeaks, l => l.Address == (nuint)p);
        Assert.Contains($"unreferenced object 0x{(nuint)p:x} ", Kmemleak.Read());

        Kmemleak.Write("clear");                     // painted gray: never reported again
        Assert.DoesNotContain($"0x{(nuint)p:x}", Kmemleak.Read());
        Assert.False(Reported(Leaks.ScanTwice(), p));

        Kmemleak.Write("unref_scans=3");
        nint* q = (nint*)Heap.Malloc(64, t);
        Kmemleak.Scan();                              // primes the checksum
        Assert.False(Reported(Kmemleak.Scan(), q));  // 1st unreferenced scan
        Assert.False(Reported(Kmemleak.Scan(), q));  // 2nd
        Assert.True(Reported(Kmemleak.Scan(), q));   // 3rd consecutive
        Kmemleak.Write("unref_scans=1");
        Kmemleak.Write("clear");
        Heap.Free(p, t);
        Heap.Free(q, t);
    }

    [Fact]
    public void Blocks_allocated_and_freed_around_scans_are_handled()
    {
        var t = Types.New();
        void* p = Heap.Malloc(64, t);
        Kmemleak.Scan();
        Heap.Free(p, t); // freed after being seen
        void* q = Heap.Malloc(64, t); // likely the same block, a new allocation
        LeakScanResult r = Kmemleak.Scan();
        Assert.DoesNotContain(r.Leaks, l => l.Address == (nuint)q); // first white scan of q primes its checksum
        Assert.True(Reported(Kmemleak.Scan(), q));
        Heap.Free(q, t);
        Assert.DoesNotContain($"0x{(nuint)q:x} ", Kmemleak.Read()); // freed: no longer listed
        Kmemleak.Write("clear");
    }

    [Fact]
    public void A_block_moved_between_two_holders_during_scans_is_never_reported()
    {
        var t = Types.New();
        using var root = new RootTable(2);
        void* moving = Heap.Malloc(64, t);
        root[0] = (nint)moving;
        using var stop = new ManualResetEventSlim();
        var mover = new Thread(() =>
        {
            int i = 0;
            while (!stop.IsSet)
            {
                // Always held by one of the two slots; the other is cleared after the copy. A little work between
                // moves, as a real program does (a mover that does nothing but move can always outrun a scan that
                // reads the two slots a few nanoseconds apart; see docs/kmemleak.md).
                root[(i + 1) & 1] = (nint)moving;
                root[i & 1] = 0;
                i++;
                Thread.SpinWait(20);
            }
        });
        mover.Start();
        try
        {
            for (int i = 0; i < 100; i++)
                Assert.False(Reported(Kmemleak.Scan(), moving), $"reported at scan {i}");
        }
        finally
        {
            stop.Set();
            mover.Join();
        }
        Heap.Free(moving, t);
    }

    [Fact]
    public void Automatic_scanning_runs_in_the_background_and_logs_new_leaks()
    {
        var t = Types.New();
        Heap.Malloc(80, t); // leaked
        using var seen = new ManualResetEventSlim();
        void Watch(KmemMessageKind kind, string text)
        {
            if (text.Contains("new suspected memory leaks"))
                seen.Set();
        }
        KmemDiagnostics.Message += Watch;
        try
        {
            Kmemleak.Write("scan=1"); // every second (the first scan waits one period)
            Assert.True(seen.Wait(TimeSpan.FromSeconds(60)), "no automatic scan reported the leak");
        }
        finally
        {
            Kmemleak.Write("scan=off");
            KmemDiagnostics.Message -= Watch;
        }
        Assert.Contains(Kmemleak.Scan().Leaks, l => l.Type == t.ShortDesc);
        Kmemleak.Write("clear");
    }

    [Fact]
    public void Scans_run_safely_while_other_threads_allocate_and_free_reachable_blocks()
    {
        var t = Types.New();
        using var root = new RootTable(64);
        using var stop = new ManualResetEventSlim();
        int cycles = 0;
        var worker = new Thread(() =>
        {
            var rng = new Random(7);
            while (!stop.IsSet)
            {
                int i = rng.Next(64);
                nint old = root[i];
                // Small, large and vmalloc'd blocks come and go; each is published in the root table before the old one goes.
                int kind = rng.Next(10);
                root[i] = kind == 0 ? (nint)Heap.Malloc(100_000, t) : (nint)Heap.Malloc((nuint)rng.Next(1, 2000), t);
                if (old != 0)
                    Heap.Free((void*)old, t);
                if (++cycles % 16 == 0)
                    Thread.Sleep(1); // slots live for a while: some blocks get past the minimum age
            }
        });
        // A block is only in the worker's register between Malloc and its store to the table; if the worker is preempted
        // there for longer than every marking pass takes, no scan can see it. The minimum age is what covers that window
        // (as in the kernel), so this test keeps one: short, but far longer than any preemption.
        Kmemleak.Write("minage=300");
        worker.Start();
        try
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            for (int i = 0; i < 30 || watch.ElapsedMilliseconds < 1500; i++)
                Assert.DoesNotContain(Kmemleak.Scan().Leaks, l => l.Type == t.ShortDesc);
        }
        finally
        {
            stop.Set();
            worker.Join();
        }
        Assert.True(cycles > 0);
        for (int i = 0; i < 64; i++)
            if (root[i] != 0)
                Heap.Free((void*)root[i], t);
        Assert.Equal(0, t.GetStats().InUse);
    }

    [Fact]
    public void Commands_are_validated()
    {
        foreach (string bad in new[] { "", "bogus", "scan=x", "minage=-1", "unref_scans=0", "unref_scans=99", "dump=zz", "stack=maybe", "scanX", "gc=maybe", "process=", "process=yes" })
            Assert.Throws<ArgumentException>(() => Kmemleak.Write(bad));
        Assert.Throws<ArgumentNullException>(() => Kmemleak.Write(null!));
        Assert.Throws<ArgumentException>(() => Kmemleak.Write("dump=0x10"));
        Kmemleak.Write("stack=off");
        Assert.False(Kmemleak.StackScanning);
        Kmemleak.Write("stack=on");
        Assert.True(Kmemleak.StackScanning);
        Kmemleak.Write("minage=1234");
        Assert.Equal(1234, Kmemleak.MinimumAgeMs);
        Kmemleak.Write("unref_scans=2");
        Assert.Equal(2, Kmemleak.UnreferencedScans);
        Leaks.Reset();
    }

    [Fact]
    public void Dump_prints_the_objects_record()
    {
        var t = Types.New();
        void* p = Heap.Malloc(100, t);
        string dump = Kmemleak.Write($"dump=0x{(nuint)p + 10:x}"); // interior addresses find the object
        string[] lines = dump.Split('\n');
        Assert.Equal($"Object 0x{(nuint)p:x} (size 112):", lines[0]);
        Assert.StartsWith("  comm \"", lines[1]);
        Assert.Equal("  min_count = 1", lines[2]);
        Assert.Equal("  count = 0", lines[3]);
        Assert.Equal("  flags = 0x1", lines[4]);
        Assert.Matches("^  checksum = [0-9]+$", lines[5]);
        Assert.Equal("  backtrace:", lines[6]);
        Assert.Contains(nameof(Dump_prints_the_objects_record), lines[7]);
        Kmemleak.Ignore(p);
        Assert.Contains("min_count = -1", Kmemleak.Write($"dump=0x{(nuint)p:x}"));
        Heap.Free(p, t);
    }

    [Fact]
    public void Trace_on_adds_the_managed_stack_to_the_report()
    {
        var t = Types.New();
        Kmemleak.Write("trace=on");
        void* p = Heap.Malloc(48, t);
        Kmemleak.Write("trace=off");
        void* q = Heap.Malloc(48, t);
        Kmemleak.Write("trace=on");
        Leaks.ScanTwice();
        string report = Kmemleak.Read();
        string Section(void* x)
        {
            int at = report.IndexOf($"unreferenced object 0x{(nuint)x:x} ", StringComparison.Ordinal);
            int end = report.IndexOf("unreferenced object", at + 1, StringComparison.Ordinal);
            return report[at..(end < 0 ? report.Length : end)];
        }
        Assert.Contains("KmemleakApiTests.Trace_on_adds_the_managed_stack_to_the_report", Section(p));
        Assert.DoesNotContain("KmemleakApiTests.Trace_on", Section(q).Replace(nameof(Trace_on_adds_the_managed_stack_to_the_report) + " at", ""));
        Kmemleak.Write("trace=off");
        Kmemleak.Write("clear");
        Heap.Free(p, t);
        Heap.Free(q, t);
    }

    [Fact]
    public void Summary_groups_direct_then_indirect_leaks_like_LeakSanitizer()
    {
        var t = Types.New();
        nint* parent = (nint*)Heap.Malloc(64, t, MallocFlags.Zero);
        for (int i = 0; i < 2; i++)
            parent[i] = (nint)Heap.Malloc(64, t); // one site: one group
        LeakScanResult r = Leaks.ScanTwice();
        var mine = r.Of(t);
        var filtered = new LeakScanResult(mine, r.Stats);
        string summary = filtered.Summary();
        Assert.Matches($"^Direct leak of 64 byte\\(s\\) in 1 object\\(s\\) of type {t.ShortDesc} allocated from:\n    {nameof(Summary_groups_direct_then_indirect_leaks_like_LeakSanitizer)} at .*KmemleakApiTests.cs:[0-9]+\n\n" +
                       $"Indirect leak of 128 byte\\(s\\) in 2 object\\(s\\) of type {t.ShortDesc} allocated from:\n", summary);
        Assert.EndsWith("SUMMARY: 192 byte(s) leaked in 3 allocation(s).\n", summary);
        Assert.True(r.Stats.Objects > 0 && r.Stats.BytesScanned > 0);
        Kmemleak.Write("clear");
    }
}

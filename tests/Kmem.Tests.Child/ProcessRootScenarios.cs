// ProcessRootScenarios.cs — kmemleak over the whole process, each case in a fresh, small process: managed fields,
// thread stacks and other native heaps are roots; the detector's own bookkeeping never is; scans survive mappings
// changing under them and structures mutated by other threads. A fresh process matters: in a test host, other tests'
// dangling pointers and stale stack slots can hold any address a new block gets. Addresses the scenarios keep are
// complemented, so they hold no reference they did not mean to.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kmem;

internal static unsafe class ProcessRootScenarios
{
    /// <summary>Runs the scenario "roots-…"; 0 when every check held, 1 (and "FAIL: …" on stdout) otherwise.</summary>
    public static int Run(string name)
    {
        Kmemleak.Write("minage=0");
        Kmemleak.Write("unref_scans=1");
        return Check.Outcome(name switch
        {
            "roots-defaults" => Process_roots_are_on_by_default_here_and_report_what_they_read,
            "roots-field" => A_field_of_a_live_managed_object_keeps_its_block_until_the_field_is_cleared,
            "roots-native" => Memory_from_another_native_heap_keeps_its_target_alive,
            "roots-stack" => A_local_on_a_live_threads_stack_is_a_root_with_stack_on_and_not_with_stack_off,
            "roots-mapping-churn" => Scans_complete_while_another_thread_maps_unmaps_and_protects_memory,
            "roots-self" => The_detectors_own_bookkeeping_never_makes_a_leak_look_referenced,
            "roots-mutation" => A_structure_mutated_by_other_threads_through_200_scans_is_never_reported_with_default_settings,
            "roots-idle" => Idle,
            "roots-foreign-unmapped" => Registered_foreign_memory_unmapped_behind_the_detectors_back_is_skipped,
            "roots-read-after-protect" => Read_survives_a_reported_foreign_object_made_inaccessible,
            "roots-caller-register" => A_pointer_the_caller_keeps_across_scans_is_never_reported,
            "roots-running-thread" => A_running_threads_stack_is_known_for_stack_off,
            _ => null,
        });
    }

    // The cost of a scan in a small idle process (for the benchmarks too): roots read, time, parts.
    private static void Idle()
    {
        Kmemleak.Scan();
        LeakScanResult r = Kmemleak.Scan();
        LeakScanStats s = r.Stats;
        Console.WriteLine($"idle-scan roots={s.ProcessRootBytes} ranges={s.ProcessRootRanges} total_us={s.Duration.TotalMicroseconds:F0} " +
            $"gc_us={s.GcTime.TotalMicroseconds:F0} roots_us={s.ProcessRootTime.TotalMicroseconds:F0} mark_us={s.MarkTime.TotalMicroseconds:F0} " +
            $"classify_us={s.ClassifyTime.TotalMicroseconds:F0}");
    }

    // The first scan primes the checksums (nothing is reported on its first white scan); the second reports.
    private static LeakScanResult ScanTwice()
    {
        Kmemleak.Scan();
        return Kmemleak.Scan();
    }

    // Whether an object nothing refers to any more is reported by one of the scans after the priming one (at most
    // four). A conservative scan can meet a stale copy of its address (a dead slot in a frame some scan reuses, a
    // register a thread has not overwritten yet), which delays the report by a scan or so, as in the kernel; the
    // dead stack below this frame is zeroed before each scan so that such copies go quickly.
    private static bool ReportedWithin(nuint keyComplement)
    {
        ScrubStack();
        Kmemleak.Scan();
        for (int i = 0; i < 4; i++)
        {
            ScrubStack();
            if (Reported(Kmemleak.Scan(), keyComplement))
                return true;
        }
        return false;
    }

    // A block or object expected to be reported (within four scans) and not: a conservative scan's miss, which some
    // unrelated word equal to its address causes now and then. The message starts with "missed:" (the test host runs
    // such a scenario once more, and only then fails) and says where the address was found.
    private static void CheckReportedWithin(nuint keyComplement, string what)
    {
        if (!ReportedWithin(keyComplement))
            MissedReport(keyComplement, what);
    }

    private static void MissedReport(nuint keyComplement, string what) =>
        Check.Fail($"missed: {what} (0x{~keyComplement:x}) was not reported; referenced from "
            + string.Join("; ", Kmemleak.FindRootReferences((void*)~keyComplement)));

    private static MallocType NewType([CallerMemberName] string name = "") => new(name.Length > 20 ? name[..20] : name, name);

    private sealed class Holder
    {
        public nint Field;
    }

    // Allocates a block, stores it in the holder and returns it complemented; the caller's frame never sees it raw.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static nuint AllocInto(Holder h, MallocType t)
    {
        h.Field = (nint)Heap.Malloc(64, t);
        return ~(nuint)h.Field;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static nuint AllocLeaked(nuint size, MallocType t) => ~(nuint)Heap.Malloc(size, t);

    // Stores the address whose complement is keyComplement into p[index], in a frame of its own (gone afterwards).
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Store(nint* p, int index, nuint keyComplement) => p[index] = (nint)~keyComplement;

    private static bool Reported(LeakScanResult r, nuint keyComplement) => r.Leaks.Any(l => l.AddressComplement == keyComplement);

    private static void Process_roots_are_on_by_default_here_and_report_what_they_read()
    {
        Check.True(Kmemleak.ProcessRootsSupported);
        Check.True(Kmemleak.ProcessRootsEnabled);
        LeakScanResult r = Kmemleak.Scan();
        Check.True(r.Stats.ProcessRoots);
        Check.True(r.Stats.ProcessRootBytes > 1 << 20, $"{r.Stats.ProcessRootBytes} bytes of roots"); // GC heap, stacks, libraries
        Check.True(r.Stats.ProcessRootRanges > 10);
        Check.True(r.Stats.Passes >= 1);
        Check.True(r.Stats.GcTime > TimeSpan.Zero);
        Kmemleak.Write("gc=off");
        Check.Equal(TimeSpan.Zero, Kmemleak.Scan().Stats.GcTime);
        Kmemleak.Write("process=off");
        LeakScanResult off = Kmemleak.Scan();
        Check.False(off.Stats.ProcessRoots);
        Check.Equal(0L, off.Stats.ProcessRootBytes);
    }

    private static void A_field_of_a_live_managed_object_keeps_its_block_until_the_field_is_cleared()
    {
        MallocType t = NewType();
        var holder = new Holder();
        // Settle the holder in the oldest generation first: an object the GC moves leaves a stale copy behind (documented).
        GC.Collect();
        GC.Collect();
        nuint key = AllocInto(holder, t);
        for (int i = 0; i < 3; i++)
            Check.False(Reported(Kmemleak.Scan(), key), $"reported while held, scan {i}");
        holder.Field = 0;
        CheckReportedWithin(key, "the block whose field was cleared");
        GC.KeepAlive(holder);
        Heap.Free((void*)~key, t);
    }

    private static void Memory_from_another_native_heap_keeps_its_target_alive()
    {
        MallocType t = NewType();
        nint* native = (nint*)NativeMemory.AllocZeroed(256);
        try
        {
            nuint key = AllocLeaked(64, t);
            Store(native, 17, key);
            Check.False(Reported(ScanTwice(), key));
            native[17] = 0;
            CheckReportedWithin(key, "the block whose native holder was cleared");
            Heap.Free((void*)~key, t);
        }
        finally
        {
            NativeMemory.Free(native);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void HoldOnStack(MallocType t, StrongBox<nuint> key, ManualResetEventSlim ready, ManualResetEventSlim release)
    {
        nint* local = stackalloc nint[4];          // a local in this frame, in stack memory for sure
        local[1] = (nint)Heap.Malloc(64, t);
        key.Value = ~(nuint)local[1];
        ready.Set();
        release.Wait();
        Heap.Free((void*)local[1], t);
        local[1] = 0;
    }

    private static void A_local_on_a_live_threads_stack_is_a_root_with_stack_on_and_not_with_stack_off()
    {
        MallocType t = NewType();
        var key = new StrongBox<nuint>();
        using var ready = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var thread = new Thread(() => HoldOnStack(t, key, ready, release)) { Name = "holder" };
        thread.Start();
        ready.Wait();
        try
        {
            Kmemleak.Write("stack=on");
            Check.False(Reported(ScanTwice(), key.Value), "stack=on: the local is a root");
            Kmemleak.Write("stack=off");
            Check.True(Reported(ScanTwice(), key.Value), "stack=off: thread stacks are not roots");
        }
        finally
        {
            Kmemleak.Write("stack=on");
            release.Set();
            thread.Join();
        }
    }

    private static void Scans_complete_while_another_thread_maps_unmaps_and_protects_memory()
    {
        MallocType t = NewType();
        var holder = new Holder();
        GC.Collect();
        GC.Collect();
        nuint held = AllocInto(holder, t);
        nuint leaked = AllocLeaked(64, t);
        using var stop = new ManualResetEventSlim();
        long cycles = 0;
        var churn = new Thread(() =>
        {
            var rnd = new Random(5);
            while (!stop.IsSet)
                if (Libc.MapProtectUnmap(rnd.Next(1, 64)))
                    Interlocked.Increment(ref cycles);
        }) { Name = "mapping churn" };
        churn.Start();
        try
        {
            for (int i = 0; i < 30; i++)
            {
                ScrubStack();
                LeakScanResult r = Kmemleak.Scan();
                Check.False(Reported(r, held));
                if (i > 0)
                    Check.True(Reported(r, leaked), $"scan {i}");
            }
        }
        finally
        {
            stop.Set();
            churn.Join();
        }
        Check.True(Interlocked.Read(ref cycles) > 30, $"{cycles} mapping cycles ran");
        GC.KeepAlive(holder);
        Heap.Free((void*)~held, t);
        Heap.Free((void*)~leaked, t);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static nuint AllocPhysObject(PhysRegion region)
    {
        ulong phys = region.Alloc(64);
        Kmemleak.AllocPhys(phys, 64, 1);
        return ~(nuint)phys;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static nuint RegisterForeign()
    {
        void* p = NativeMemory.AllocZeroed(96);
        Kmemleak.Alloc(p, 96, 1);
        return ~(nuint)p;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static nuint AllocPercpuLeaked(MallocType t) => ~(nuint)Heap.AllocPercpu(32, 8, t).Cookie;

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static nuint VmallocLeaked(MallocType t) => ~(nuint)Heap.Vmalloc(5000, t);

    // The detector meets these addresses in every way it can: dumps, scan areas, trace updates, checksums reset. Done in
    // a frame of its own, which is dead (below the scan's stack pointer) when the scan runs.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void MeetAddresses(List<nuint> keys)
    {
        foreach (nuint k in keys)
        {
            Check.Contains("Object", Kmemleak.Write($"dump=0x{~k:x}"));
            Kmemleak.ScanArea((void*)~k, 8);
            Kmemleak.UpdateTrace((void*)~k);
            Kmemleak.TransientLeak((void*)~k);
        }
    }

    private static void The_detectors_own_bookkeeping_never_makes_a_leak_look_referenced()
    {
        MallocType t = NewType();
        Kmemleak.Write("trace=on"); // each block's stack is kept, by offset
        var keys = new List<nuint>();
        for (int i = 0; i < 40; i++)
            keys.Add(AllocLeaked((nuint)(16 << (i % 8)), t));       // slab blocks of many classes
        keys.Add(AllocLeaked(100_000, t));                           // a large block
        nuint vm = VmallocLeaked(t);
        keys.Add(vm);
        nuint percpu = AllocPercpuLeaked(t);
        keys.Add(percpu);
        using PhysRegion region = PhysRegion.Create(1 << 16);
        region.Map();
        nuint phys = AllocPhysObject(region);
        keys.Add(phys);
        nuint foreign = RegisterForeign();
        keys.Add(foreign);
        Kmemleak.Write("trace=off");
        try
        {
            MeetAddresses(keys.Take(8).ToList());
            LeakScanResult first = ScanTwice();
            string text = Kmemleak.Read();
            LeakScanResult again = Kmemleak.Scan(); // `first` and the report text are alive and hold every address
            foreach (LeakScanResult r in new[] { first, again })
                foreach (nuint k in keys)
                    if (!Reported(r, k))
                        MissedReport(k, "a leak the detector's own bookkeeping has met");
            Check.Equal(new[] { LeakObjectKind.Block, LeakObjectKind.Large, LeakObjectKind.Vmalloc, LeakObjectKind.PerCpu,
                    LeakObjectKind.Foreign, LeakObjectKind.Phys },
                again.Leaks.Where(l => keys.Contains(~l.Address)).Select(l => l.Kind).Distinct().OrderBy(k => k));
            Check.Contains($"0x{~keys[0]:x}", text);
            GC.KeepAlive(first);
        }
        finally
        {
            for (int i = 0; i < 41; i++)
                Heap.Free((void*)~keys[i], t);
            Heap.Vfree((void*)~vm);
            Heap.FreePercpu(new PerCpuPtr((void*)~percpu), t);
            Kmemleak.FreePartPhys(~phys, 64);
            Kmemleak.Free((void*)~foreign);
            NativeMemory.Free((void*)~foreign);
        }
    }

    // Registered foreign memory is not Kmem's: it is read through the fault-free copy, so a program that unmaps it
    // without Kmemleak.Free (a bug the kernel would crash on) loses the references it held, not the process.
    private static void Registered_foreign_memory_unmapped_behind_the_detectors_back_is_skipped()
    {
        MallocType t = NewType();
        nuint mapC = ~(nuint)Libc.mmap(0, 8192, Libc.ProtReadWrite, Libc.MapPrivateAnonymous, -1, 0);
        Check.True(mapC != 0, "mmap failed");
        Kmemleak.Alloc((void*)~mapC, 8192, 0); // a root
        nuint held = AllocInto(mapC, 5, t);
        Check.False(Reported(ScanTwice(), held), "held by registered foreign memory");
        Libc.munmap((nint)~mapC, 4096);             // the first page goes, still registered
        CheckReportedWithin(held, "the block whose only holder is gone");
        Libc.munmap((nint)~mapC + 4096, 4096);
        Kmemleak.Free((void*)~mapC);
        Heap.Free((void*)~held, t);
    }

    // Stores a new block in word `index` of the memory at ~mapC and returns it complemented; the raw value stays in
    // this frame, dead once it returns.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static nuint AllocInto(nuint mapC, int index, MallocType t)
    {
        void* p = Heap.Malloc(64, t);
        ((nint*)~mapC)[index] = (nint)p;
        return ~(nuint)p;
    }

    // The report's hex dump reads the object's first bytes: for foreign memory through the fault-free copy, so a
    // reported object the program has since protected or unmapped costs its hex dump, not the process.
    private static void Read_survives_a_reported_foreign_object_made_inaccessible()
    {
        nuint mapC = MapRegistered();
        CheckReportedWithin(mapC, "the leaked foreign object");
        Check.Contains($"unreferenced object 0x{~mapC:x} (size 4096):\n  comm", Kmemleak.Read());
        Libc.mprotect((nint)~mapC, 4096, Libc.ProtNone);
        string text = Kmemleak.Read();         // no hex dump now, and no crash
        Check.Contains($"unreferenced object 0x{~mapC:x} (size 4096)", text);
        Libc.munmap((nint)~mapC, 4096);
        text = Kmemleak.Read();
        Check.Contains($"unreferenced object 0x{~mapC:x} (size 4096)", text);
        Kmemleak.Free((void*)~mapC);
        Libc.munmap((nint)~mapC - 4096, 4096); // the guard pages
        Libc.munmap((nint)~mapC + 4096, 4096);
    }

    // A page of its own between two inaccessible guard pages of ours, registered with min_count 1 (nothing refers to
    // it), returned complemented. The guards keep other mappings away from it: a mapping that ended where it starts
    // would leave its end address (one past its last byte, which is this page's first) in somebody's bookkeeping, and
    // that word refers to this page as far as a conservative scan can tell.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static nuint MapRegistered()
    {
        nint guarded = Libc.mmap(0, 3 * 4096, Libc.ProtReadWrite, Libc.MapPrivateAnonymous, -1, 0);
        Check.True(guarded != -1, "mmap failed");
        Libc.mprotect(guarded, 4096, Libc.ProtNone);
        Libc.mprotect(guarded + 2 * 4096, 4096, Libc.ProtNone);
        Kmemleak.Alloc((void*)(guarded + 4096), 4096, 1);
        return ~(nuint)(guarded + 4096);
    }

    // A pointer a caller of Scan keeps only in a register (or a slot of its own frame) across the calls is a root: the
    // registers are saved into the frame of Scan before the detector's own frames push them.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void A_pointer_the_caller_keeps_across_scans_is_never_reported()
    {
        MallocType t = NewType();
        for (int round = 0; round < 4; round++)
        {
            ScrubStack();
            HoldAcrossScans(t, round);
        }
    }

    // Zeroes the stack below the caller, so that no stale copy of an address lies where the next scan reads (also used by
    // the fire-scan scenario).
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void ScrubStack()
    {
        byte* scrub = stackalloc byte[16384];
        new Span<byte>(scrub, 16384).Clear();
    }

    // Several pointers live across the scans: the JIT keeps them in callee-saved registers (rbx, r12–r15) rather than
    // in this frame, so only the registers saved at the bottom of Scan's frame show them to the scan.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void HoldAcrossScans(MallocType t, int round)
    {
        nint* a = (nint*)Heap.Malloc(64, t), b = (nint*)Heap.Malloc(64, t), c = (nint*)Heap.Malloc(64, t);
        nuint ka = ~(nuint)a, kb = ~(nuint)b, kc = ~(nuint)c;
        for (int i = 0; i < 4; i++)
        {
            LeakScanResult r = Kmemleak.Scan();
            Check.False(Reported(r, ka) || Reported(r, kb) || Reported(r, kc), $"round {round}, scan {i}: a block the caller still holds was reported");
        }
        a[0] = b[0] = c[0] = round;            // live until here
        Heap.Free(a, t);
        Heap.Free(b, t);
        Heap.Free(c, t);
    }

    // A thread spinning on a CPU never reports a stack pointer; its stack is still known (from its thread cache), so
    // stack=off leaves it out and stack=on reads all of it.
    private static void A_running_threads_stack_is_known_for_stack_off()
    {
        MallocType t = NewType();
        var key = new StrongBox<nuint>();
        using var ready = new ManualResetEventSlim();
        var stop = new StrongBox<bool>();
        var thread = new Thread(() => Spin(t, key, ready, stop)) { Name = "spinner" };
        thread.Start();
        ready.Wait();
        try
        {
            Kmemleak.Write("stack=on");
            Check.False(Reported(ScanTwice(), key.Value), "stack=on: the spinning thread's local is a root");
            Kmemleak.Write("stack=off");
            Check.True(Reported(ScanTwice(), key.Value), "stack=off: the spinning thread's stack is left out; referenced from "
                + string.Join("; ", Kmemleak.FindRootReferences((void*)~key.Value)));
        }
        finally
        {
            Kmemleak.Write("stack=on");
            Volatile.Write(ref stop.Value, true);
            thread.Join();
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Spin(MallocType t, StrongBox<nuint> key, ManualResetEventSlim ready, StrongBox<bool> stop)
    {
        nint* local = stackalloc nint[4];
        local[1] = (nint)Heap.Malloc(64, t);
        key.Value = ~(nuint)local[1];
        ready.Set();
        while (!Volatile.Read(ref stop.Value))
            Thread.SpinWait(100);
        Heap.Free((void*)local[1], t);
    }

    private sealed class ListRoot
    {
        public nint Head;
    }

    private static void A_structure_mutated_by_other_threads_through_200_scans_is_never_reported_with_default_settings()
    {
        MallocType nodes = new("mutnodes", "list nodes");
        MallocType control = new("mutctl", "the control leak");
        Kmemleak.Write("minage=5000"); // the defaults, all of them
        Kmemleak.Write("unref_scans=1");
        var root = new ListRoot();
        var holderA = new Holder();
        var holderB = new Holder();
        GC.Collect();
        GC.Collect();
        BuildList(root, nodes, 200);
        holderA.Field = (nint)~AllocLeaked(48, nodes); // the moving pointer, raw in a holder
        nuint leaked = AllocLeaked(64, control);       // proves the scans can report
        Kmemleak.Scan();                               // bounds the births: ages count from this scan
        Thread.Sleep(5200);                            // everything is past the minimum age
        using var stop = new ManualResetEventSlim();
        var listMutator = new Thread(() => MutateList(root, nodes, stop)) { Name = "list mutator" };
        var mover = new Thread(() => MovePointer(holderA, holderB, stop)) { Name = "mover" };
        listMutator.Start();
        mover.Start();
        var wrong = new List<string>();
        bool controlSeen = false;
        try
        {
            for (int i = 0; i < 200; i++)
            {
                LeakScanResult r = Kmemleak.Scan();
                wrong.AddRange(r.Leaks.Where(l => l.Type == nodes.ShortDesc).Select(l => $"scan {i}: 0x{l.Address:x} {l.Size}"));
                controlSeen |= Reported(r, leaked);
            }
        }
        finally
        {
            stop.Set();
            listMutator.Join();
            mover.Join();
        }
        Check.Empty(wrong);
        Check.True(controlSeen, "the leaked control block was never reported; referenced from "
            + string.Join("; ", Kmemleak.FindRootReferences((void*)~leaked)));
        FreeList(root, nodes);
        Heap.Free((void*)(holderA.Field | holderB.Field), nodes);
        Heap.Free((void*)~leaked, control);
        Kmemleak.Write("minage=0");
    }

    // Node layout: [0] next, [8] payload.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void BuildList(ListRoot root, MallocType t, int count)
    {
        for (int i = 0; i < count; i++)
        {
            nint* n = (nint*)Heap.Malloc(64, t);
            n[0] = root.Head;
            n[1] = i;
            root.Head = (nint)n;
        }
    }

    private static void MutateList(ListRoot root, MallocType t, ManualResetEventSlim stop)
    {
        var rnd = new Random(7);
        while (!stop.IsSet)
        {
            // Unlink and free the node after a random position, then link a new one in at another.
            nint* prev = (nint*)root.Head;
            for (int k = rnd.Next(150); k > 0 && prev[0] != 0; k--)
                prev = (nint*)prev[0];
            nint* victim = (nint*)prev[0];
            if (victim != null)
            {
                prev[0] = victim[0];
                Heap.Free(victim, t);
            }
            nint* at = (nint*)root.Head;
            for (int k = rnd.Next(150); k > 0 && at[0] != 0; k--)
                at = (nint*)at[0];
            nint* n = (nint*)Heap.Malloc(64, t);
            n[0] = at[0];
            at[0] = (nint)n;
            Thread.SpinWait(200);
        }
    }

    private static void MovePointer(Holder a, Holder b, ManualResetEventSlim stop)
    {
        while (!stop.IsSet)
        {
            // Clear one holder, then set the other: the pointer is briefly only in a register.
            if (a.Field != 0)
            {
                nint p = a.Field;
                a.Field = 0;
                b.Field = p;
            }
            else
            {
                nint p = b.Field;
                b.Field = 0;
                a.Field = p;
            }
            Thread.SpinWait(200);
        }
    }

    private static void FreeList(ListRoot root, MallocType t)
    {
        nint n = root.Head;
        root.Head = 0;
        while (n != 0)
        {
            nint next = *(nint*)n;
            Heap.Free((void*)n, t);
            n = next;
        }
    }
}

/// <summary>A failed check in a child scenario.</summary>
internal sealed class CheckFailed(string message) : Exception(message);

internal static class Check
{
    /// <summary>Runs a scenario (null: unknown name, 2): "ok" and 0 when every check held, "FAIL: …" and 1 otherwise.</summary>
    public static int Outcome(Action? scenario)
    {
        if (scenario is null)
            return 2;
        try
        {
            scenario();
        }
        catch (CheckFailed e)
        {
            Console.WriteLine("FAIL: " + e.Message);
            return 1;
        }
        Console.WriteLine("ok");
        return 0;
    }

    public static void True(bool condition, string message = "expected true")
    {
        if (!condition)
            throw new CheckFailed(message);
    }

    public static void False(bool condition, string message = "expected false") => True(!condition, message);

    public static void Contains(string expected, string actual) =>
        True(actual.Contains(expected, StringComparison.Ordinal), $"'{expected}' not in '{actual}'");

    public static void Equal<T>(T expected, T actual) =>
        True(EqualityComparer<T>.Default.Equals(expected, actual), $"expected {expected}, got {actual}");

    public static void Equal<T>(IEnumerable<T> expected, IEnumerable<T> actual) =>
        True(expected.SequenceEqual(actual), $"expected [{string.Join(", ", expected)}], got [{string.Join(", ", actual)}]");

    public static void Empty(IEnumerable<string> items) =>
        True(!items.Any(), "expected nothing, got: " + string.Join("; ", items.Take(10)));

    public static void Fail(string message) => throw new CheckFailed(message);
}

// ProcessRootsTests.cs — kmemleak over the whole process: managed fields, thread stacks and other native heaps are roots;
// the detector's own bookkeeping never is; scans survive mappings changing under them and structures mutated by other
// threads. Addresses the tests keep are complemented, so the tests themselves hold no reference they did not mean to.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Xunit;

namespace Kmem.Tests;

[Collection(KmemleakCollection.Name)]
public unsafe class ProcessRootsTests
{
    public ProcessRootsTests()
    {
        Leaks.Reset();
        Kmemleak.Write("process=on");
        Kmemleak.Write("gc=on");
    }

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

    private static bool Reported(LeakScanResult r, nuint keyComplement) => r.Leaks.Any(l => ~l.Address == keyComplement);

    [Fact]
    public void Process_roots_are_on_by_default_here_and_report_what_they_read()
    {
        Assert.True(Kmemleak.ProcessRootsSupported);
        Assert.True(Kmemleak.ProcessRootsEnabled);
        LeakScanResult r = Kmemleak.Scan();
        Assert.True(r.Stats.ProcessRoots);
        Assert.True(r.Stats.ProcessRootBytes > 1 << 20, $"{r.Stats.ProcessRootBytes} bytes of roots"); // GC heap, stacks, libraries
        Assert.True(r.Stats.ProcessRootRanges > 10);
        Assert.True(r.Stats.Passes >= 1);
        Assert.True(r.Stats.GcTime > TimeSpan.Zero);
        Kmemleak.Write("gc=off");
        Assert.Equal(TimeSpan.Zero, Kmemleak.Scan().Stats.GcTime);
        Kmemleak.Write("process=off");
        LeakScanResult off = Kmemleak.Scan();
        Assert.False(off.Stats.ProcessRoots);
        Assert.Equal(0, off.Stats.ProcessRootBytes);
    }

    [Fact]
    public void A_field_of_a_live_managed_object_keeps_its_block_until_the_field_is_cleared()
    {
        MallocType t = Types.New();
        var holder = new Holder();
        // Settle the holder in the oldest generation first: an object the GC moves leaves a stale copy behind (documented).
        GC.Collect();
        GC.Collect();
        nuint key = AllocInto(holder, t);
        for (int i = 0; i < 3; i++)
            Assert.False(Reported(Kmemleak.Scan(), key), $"reported while held, scan {i}");
        holder.Field = 0;
        Assert.True(Reported(Leaks.ScanTwice(), key));
        GC.KeepAlive(holder);
        Heap.Free((void*)~key, t);
    }

    [Fact]
    public void Memory_from_another_native_heap_keeps_its_target_alive()
    {
        MallocType t = Types.New();
        nint* native = (nint*)NativeMemory.AllocZeroed(256);
        try
        {
            nuint key = AllocLeaked(64, t);
            native[17] = (nint)~key;
            Assert.False(Reported(Leaks.ScanTwice(), key));
            native[17] = 0;
            Assert.True(Reported(Leaks.ScanTwice(), key));
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

    [Fact]
    public void A_local_on_a_live_threads_stack_is_a_root_with_stack_on_and_not_with_stack_off()
    {
        MallocType t = Types.New();
        var key = new StrongBox<nuint>();
        using var ready = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var thread = new Thread(() => HoldOnStack(t, key, ready, release)) { Name = "holder" };
        thread.Start();
        ready.Wait();
        try
        {
            Kmemleak.Write("stack=on");
            Assert.False(Reported(Leaks.ScanTwice(), key.Value), "stack=on: the local is a root");
            Kmemleak.Write("stack=off");
            Assert.True(Reported(Leaks.ScanTwice(), key.Value), "stack=off: thread stacks are not roots");
        }
        finally
        {
            Kmemleak.Write("stack=on");
            release.Set();
            thread.Join();
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern nint mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);

    [DllImport("libc", SetLastError = true)]
    private static extern int mprotect(nint addr, nuint length, int prot);

    [DllImport("libc", SetLastError = true)]
    private static extern int munmap(nint addr, nuint length);

    [Fact]
    public void Scans_complete_while_another_thread_maps_unmaps_and_protects_memory()
    {
        MallocType t = Types.New();
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
            {
                nuint len = (nuint)rnd.Next(1, 64) * 4096;
                nint p = mmap(0, len, 3, 0x22 /* MAP_PRIVATE | MAP_ANONYMOUS */, -1, 0);
                if (p == -1)
                    continue;
                new Span<byte>((void*)p, (int)len).Fill(0x5a);
                mprotect(p, len / 2, 0);              // half inaccessible
                mprotect(p + (nint)(len / 2), len / 2, 1); // half read-only
                mprotect(p, len, 3);
                munmap(p, len);
                Interlocked.Increment(ref cycles);
            }
        }) { Name = "mapping churn" };
        churn.Start();
        try
        {
            for (int i = 0; i < 30; i++)
            {
                LeakScanResult r = Kmemleak.Scan();
                Assert.False(Reported(r, held));
                if (i > 0)
                    Assert.True(Reported(r, leaked), $"scan {i}");
            }
        }
        finally
        {
            stop.Set();
            churn.Join();
        }
        Assert.True(Interlocked.Read(ref cycles) > 30, $"{cycles} mapping cycles ran");
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
            Assert.Contains("Object", Kmemleak.Write($"dump=0x{~k:x}"));
            Kmemleak.ScanArea((void*)~k, 8);
            Kmemleak.UpdateTrace((void*)~k);
            Kmemleak.TransientLeak((void*)~k);
        }
    }

    [Fact]
    public void The_detectors_own_bookkeeping_never_makes_a_leak_look_referenced()
    {
        MallocType t = Types.New();
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
            LeakScanResult first = Leaks.ScanTwice();
            string text = Kmemleak.Read();
            LeakScanResult again = Kmemleak.Scan(); // `first` and the report text are alive and hold every address
            foreach (LeakScanResult r in new[] { first, again })
                foreach (nuint k in keys)
                    if (!Reported(r, k))
                        Assert.Fail($"0x{~k:x} not reported; referenced from " + string.Join("; ", Kmemleak.FindRootReferences((void*)~k)));
            Assert.Equal(new[] { LeakObjectKind.Block, LeakObjectKind.Large, LeakObjectKind.Vmalloc, LeakObjectKind.PerCpu,
                    LeakObjectKind.Foreign, LeakObjectKind.Phys },
                again.Leaks.Where(l => keys.Contains(~l.Address)).Select(l => l.Kind).Distinct().OrderBy(k => k));
            Assert.Contains($"0x{~keys[0]:x}", text);
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

    private sealed class ListRoot
    {
        public nint Head;
    }

    [Fact]
    public void A_structure_mutated_by_other_threads_through_200_scans_is_never_reported_with_default_settings()
    {
        MallocType nodes = Types.New();
        MallocType control = Types.New();
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
        Assert.Empty(wrong);
        Assert.True(controlSeen, "the leaked control block was never reported; referenced from "
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

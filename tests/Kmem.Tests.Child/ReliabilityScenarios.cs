// ReliabilityScenarios.cs — Heap.Verify and failure injection in a fresh process: a busy healthy heap verifies clean;
// each kind of corruption made behind the allocator's back (through its internals) is reported, and verifies clean
// again once undone; a workload under injected NoWait and page failures survives with exact statistics.
using System.Runtime.InteropServices;
using Kmem;
using Kmem.Caches;
using Kmem.Leak;
using Kmem.Pages;
using Kmem.Slabs;

internal static unsafe class ReliabilityScenarios
{
    public static int Run(string name) => name switch
    {
        "rel-verify" => VerifyCases(),
        "rel-mappings" => MappingsOfNewSlabs(),
        "rel-inject" => InjectionWorkload(),
        "rel-inject-env" => InjectionFromEnvironment(),
        _ => 2,
    };

    private static void Say(string label, IReadOnlyList<string> problems) =>
        Console.WriteLine($"{label}: {problems.Count}{string.Concat(problems.Select(p => "\n  " + p))}");

    // A heap with every kind of memory, blocks freed by other threads, a DIAGNOSTIC type with its quarantine and redzones,
    // guarded blocks and leak records; then one corruption after another, each undone before the next.
    // 96 new slabs of the largest class (8 blocks each) and a scan that meets them: the kernel mappings they add. In a
    // fresh process the slabs are neighbours; each slab's side tables and bitmaps once split the reservation ~10 times.
    private static int MappingsOfNewSlabs()
    {
        var type = new MallocType("rel-maps");
        Heap.Free(Heap.Malloc(32768, type), type);
        Kmemleak.Write("process=off");
        Kmemleak.Scan();
        int before = File.ReadAllLines("/proc/self/maps").Length;
        var blocks = new List<nuint>();
        for (int i = 0; i < 96 * 8; i++)
            blocks.Add(~(nuint)Heap.Malloc(32768, type));
        Kmemleak.Scan();
        int after = File.ReadAllLines("/proc/self/maps").Length;
        foreach (nuint b in blocks)
            Heap.Free((void*)~b, type);
        Console.WriteLine($"new mappings: {after - before}");
        return 0;
    }

    private static int VerifyCases()
    {
        Kmemleak.Write("process=off");
        var a = new MallocType("rel-a");
        var d = new MallocType("rel-diag") { Diagnostic = true };
        var g = new MallocType("rel-guarded");
        KmemOptions.SetGuardPages(g, 1, 4096);
        var blocks = new List<nint>();
        var rng = new Random(5);
        for (int i = 0; i < 3000; i++)
            blocks.Add((nint)Heap.Malloc((nuint)rng.Next(1, 3000), a));
        var t = new Thread(() =>
        {
            for (int i = 0; i < blocks.Count; i += 2)
                Heap.Free((void*)blocks[i], a); // cross-thread frees, into this thread's bins
            for (int i = 0; i < 100; i++)
                Heap.Free(Heap.Malloc(48, a), a);
        });
        t.Start();
        t.Join();
        void* large = Heap.Malloc(300_000, a);
        void* large2 = Heap.Malloc(70_000, a);
        PerCpuPtr pc = Heap.AllocPercpu(40, 16, a);
        void* area = Heap.Vmalloc(10_000, a);
        var diag = new List<nint>();
        for (int i = 0; i < 50; i++)
            diag.Add((nint)Heap.Malloc(100, d));
        for (int i = 0; i < 25; i++)
            Heap.Free((void*)diag[i], d); // poisoned, in the quarantine
        void* guarded = Heap.Malloc(200, g);
        Say("healthy", Heap.Verify());

        // 1. An owner entry zeroed behind the allocator's back: the block is lost, and its type's figures disagree.
        byte* victim = (byte*)blocks[1];
        nuint off = (nuint)(victim - KmemMap.Base);
        byte* meta = SlabMeta.Of((uint)(off >> KmemMap.UnitShift));
        uint slot = SizeClasses.SlotOf(PageMap.LookupOffset(off)->Class, off & KmemMap.UnitMask);
        ushort saved = SlabMeta.Owner(meta, slot);
        SlabMeta.Owner(meta, slot) = 0;
        Say("owner zeroed", Heap.Verify());
        SlabMeta.Owner(meta, slot) = saved;
        Say("owner restored", Heap.Verify());

        // 2. A type's statistics off by one (an allocation counted that never happened).
        TypeSlot* ts = ThreadCaches.Slot(ThreadCaches.Current(), a.Index);
        ts->Allocs++;
        Say("statistics off by one", Heap.Verify());
        ts->Allocs--;
        Say("statistics restored", Heap.Verify());

        // 3. A free-list link into an allocated block, then a cycle: the head of this thread's bin of 48-byte blocks.
        void* x = Heap.Malloc(48, a), y = Heap.Malloc(48, a);
        Heap.Free(x, a); // x is at the head of this thread's bin
        nuint link = BlockLink.Next((byte*)x);
        BlockLink.Next((byte*)x) = BlockLink.Encode((byte*)y);
        Say("link into an allocated block", Heap.Verify());
        BlockLink.Next((byte*)x) = BlockLink.Encode((byte*)x);
        Say("free-list cycle", Heap.Verify());
        BlockLink.Next((byte*)x) = link;
        Heap.Free(y, a);
        Say("links restored", Heap.Verify());

        // 4. A leak record left for a freed large block.
        void* gone = Heap.Malloc(100_000, a);
        Heap.Free(gone, a);
        LeakTracking.AddKmem(RecordKind.Large, gone, 102_400, 1, (ushort)a.Index, 0);
        Say("record of a freed block", Heap.Verify());
        LeakTracking.RemoveKmem(gone);
        Say("record removed", Heap.Verify());

        // 5. A page-map tail that names the wrong head.
        UnitInfo* tail = PageMap.Entry(KmemMap.UnitOf(large) + 1);
        uint head = tail->Head;
        tail->Head = head + 7;
        Say("page-map tail", Heap.Verify());
        tail->Head = head;

        // 5b. The flat slab-class byte of a slab unit disagreeing with its page-map entry.
        uint slabUnit = (uint)(off >> KmemMap.UnitShift);
        int slabClass = PageMap.LookupOffset(off)->Class;
        PageMap.MarkSlab(slabUnit, slabClass == 0 ? 1 : 0);
        Say("flat class byte", Heap.Verify());
        PageMap.MarkSlab(slabUnit, slabClass);

        // 6. A write after free into a quarantined block, and a redzone overrun of a live one.
        byte* freed = (byte*)diag[3];
        freed[4] ^= 0xFF; // inside the poisoned first 32 bytes of the block (the caller's address is 16 bytes in)
        Say("write after free", Heap.Verify());
        freed[4] ^= 0xFF;
        byte* live = (byte*)diag[40];
        live[100] ^= 0xFF;
        Say("redzone overrun", Heap.Verify());
        live[100] ^= 0xFF;
        Say("all restored", Heap.Verify());

        // Everything freed: still healthy, every figure zero.
        foreach (nint p in blocks.Where((_, i) => i % 2 == 1))
            Heap.Free((void*)p, a);
        foreach (nint p in diag.Skip(25))
            Heap.Free((void*)p, d);
        Heap.Free(large, a);
        Heap.Free(large2, a);
        Heap.FreePercpu(pc, a);
        Heap.Vfree(area);
        Heap.Free(guarded, g);
        d.Diagnostic = false;
        Say("all freed", Heap.Verify());
        MallocTypeStats s = a.GetStats();
        Console.WriteLine($"stats: {s.InUse} {s.MemUse} {d.GetStats().InUse} {g.GetStats().MemUse}");
        return 0;
    }

    // Two threads allocate under injected NoWait and page failures: NoWait and CanFail callers see nulls, WaitOk never
    // does, per-CPU and vmalloc and the leak scanner carry on; then everything is freed and must verify clean at zero.
    private static int InjectionWorkload()
    {
        Kmemleak.Write("process=off");
        Kmemleak.Write("minage=0");
        var type = new MallocType("rel-inject");
        var limited = new MallocType("rel-inject-limited", limit: 1 << 20);
        KmemOptions.FailNoWaitEvery = 3;
        KmemOptions.FailPageRequestsEvery = 2;
        Console.WriteLine($"gate while injecting: {type.AllocGate}");
        long waitOkNulls = 0, noWaitNulls = 0, vmNulls = 0;
        var kept = new nint[2][];
        var threads = new Thread[2];
        for (int t = 0; t < threads.Length; t++)
        {
            int id = t;
            threads[t] = new Thread(() =>
            {
                var rng = new Random(id);
                var mine = new List<nint>();
                for (int i = 0; i < 20_000; i++)
                {
                    int k = rng.Next(100);
                    nuint size = k < 3 ? (nuint)rng.Next(40_000, 400_000) : (nuint)rng.Next(1, 4096);
                    MallocFlags f = k % 2 == 0 ? MallocFlags.NoWait : k % 5 == 0 ? MallocFlags.CanFail : MallocFlags.WaitOk;
                    void* p = Heap.Malloc(size, k % 7 == 0 ? limited : type, k % 7 == 0 ? MallocFlags.NoWait : f);
                    if (p == null)
                    {
                        if (f == MallocFlags.WaitOk && k % 7 != 0)
                            Interlocked.Increment(ref waitOkNulls);
                        Interlocked.Increment(ref noWaitNulls);
                    }
                    else
                        Heap.Free(p, k % 7 == 0 ? limited : type);
                    if (i % 50 == 0)
                    {
                        void* v = Heap.Vmalloc((nuint)rng.Next(1, 50_000), type);
                        if (v == null)
                            Interlocked.Increment(ref vmNulls);
                        else
                            Heap.Vfree(v);
                        Heap.FreePercpu(Heap.AllocPercpu(64, 16, type), type);
                    }
                    if (i % 10 == 0 && Heap.Malloc(100, type) is var q && q != null)
                        mine.Add((nint)q);
                }
                kept[id] = mine.ToArray();
            });
            threads[t].Start();
        }
        Kmemleak.Scan();
        Kmemleak.Scan();
        foreach (Thread t in threads)
            t.Join();
        KmemOptions.FailNoWaitEvery = 0;
        KmemOptions.FailPageRequestsEvery = 0;
        Console.WriteLine($"gate after: {type.AllocGate}");
        Console.WriteLine($"injected nowait={KmemOptions.InjectedNoWaitFailures} pages={KmemOptions.InjectedPageFailures} waitok-nulls={waitOkNulls} nulls={noWaitNulls} vmalloc-nulls={vmNulls}");
        Say("verify with blocks live", Heap.Verify());
        MallocTypeStats live = type.GetStats();
        Console.WriteLine($"live: {live.InUse == kept[0].Length + kept[1].Length} {live.MemUse == (kept[0].Length + kept[1].Length) * 112}");
        foreach (nint[] mine in kept)
            foreach (nint p in mine)
                Heap.Free((void*)p, type); // freed by another thread than the one that allocated them
        Say("verify after freeing", Heap.Verify());
        Console.WriteLine($"stats: {type.GetStats().InUse} {type.GetStats().MemUse} {limited.GetStats().MemUse}");
        return 0;
    }

    private static int InjectionFromEnvironment()
    {
        var type = new MallocType("rel-env");
        Console.WriteLine($"every: {KmemOptions.FailNoWaitEvery} {KmemOptions.FailPageRequestsEvery}");
        int nulls = 0;
        for (int i = 0; i < 12; i++)
        {
            void* p = Heap.Malloc(32, type, MallocFlags.NoWait);
            if (p == null)
                nulls++;
            else
                Heap.Free(p, type);
        }
        Console.WriteLine($"nulls: {nulls} of 12, counted {KmemOptions.InjectedNoWaitFailures}");
        return 0;
    }
}

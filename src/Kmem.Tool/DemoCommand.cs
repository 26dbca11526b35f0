// DemoCommand.cs — `dotnet-kmem demo`: allocates every kind of Kmem memory under named types and prints vmstat -m,
// finds leaks with kmemleak, and lets DIAGNOSTIC mode catch three classic bugs.
using System.CommandLine;
using Kmem;

namespace Kmem.Tool;

internal static unsafe class DemoCommand
{
    public static Command Create()
    {
        var command = new Command("demo", "Allocate under a few malloc types (kmalloc, per-CPU, vmalloc, physical) in this process and print the vmstat -m tables.");
        command.SetAction(_ => Run());
        return command;
    }

    private static int Run()
    {
        ShowAllocator();
        ShowLeakDetection();
        ShowDiagnostic();
        return 0;
    }

    // The allocator: malloc types, limits, every kind of memory, vmstat -m. Its own frame, so that the pointers it
    // handled are dead stack by the time the leak scan runs.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void ShowAllocator()
    {
        Console.WriteLine("Kmem demo: three subsystems allocate native memory under their own malloc types.\n");
        var packets = new MallocType("packet bufs", "network packet buffers");
        var inodes = new MallocType("inode cache", "file system inodes", limit: 1 << 20);
        var scratch = MallocType.Temp;

        // A network stack: 2000 small buffers of mixed sizes, half freed again.
        var bufs = new List<nint>();
        var rng = new Random(42);
        for (int i = 0; i < 2000; i++)
            bufs.Add((nint)Heap.Malloc((nuint)rng.Next(64, 1500), packets));
        for (int i = 0; i < bufs.Count; i += 2)
            Heap.Free((void*)bufs[i], packets);

        // A file system: 256-byte inodes under a 1 MiB limit; NoWait shows what the limit refuses.
        int got = 0, refused = 0;
        var nodes = new List<nint>();
        for (int i = 0; i < 5000; i++)
        {
            void* p = Heap.Malloc(256, inodes, MallocFlags.NoWait | MallocFlags.Zero);
            if (p == null)
                refused++;
            else
            {
                nodes.Add((nint)p);
                got++;
            }
        }

        // Scratch space: one large block (whole pages, straight from the OS) and a grown buffer.
        void* big = Heap.Malloc(1 << 20, scratch);
        void* grown = Heap.Malloc(100, scratch);
        grown = Heap.Realloc(grown, 5000, scratch);

        // Per-CPU counters: one zeroed copy per CPU; each thread bumps its own CPU's copy without sharing a cache line.
        var counters = new MallocType("stat counters", "per-CPU statistics");
        PerCpuPtr hits = Heap.AllocPercpu(sizeof(long), sizeof(long), counters);
        Parallel.For(0, 100_000, _ => Interlocked.Increment(ref *(long*)hits.ThisCpu()));
        long total = 0;
        for (int cpu = 0; cpu < PerCpuPtr.Copies; cpu++)
            total += *(long*)hits.ForCpu(cpu);

        // A vmalloc area: page-granular, with inaccessible guard pages on both sides.
        var bigTables = new MallocType("hash tables", "large virtually contiguous tables");
        byte* table = (byte*)Heap.Vmalloc(3 * 4096 + 100, bigTables);
        VmArea area = Heap.FindVmArea(table + 5000)!.Value;

        // A physical region: objects known by a stable physical address, wherever the region is mapped.
        using PhysRegion region = PhysRegion.Create(1 << 20);
        region.Map();
        ulong phys = region.Alloc(256);
        *(long*)Heap.PhysToVirt(phys) = 42;
        region.Unmap();
        void* remapped = region.Map();

        Console.WriteLine($"inode cache: {got} inodes allocated, {refused} refused by the 1 MiB limit (M_NOWAIT).");
        Console.WriteLine($"per-CPU counter: {PerCpuPtr.Copies} copies {PerCpuPtr.Stride} bytes apart, summed {total} increments.");
        Console.WriteLine($"vmalloc: {area}.");
        Console.WriteLine($"physical region 0x{region.Base:x}: object at phys 0x{phys:x} reads {*(long*)Heap.PhysToVirt(phys)} after remapping at 0x{(nuint)remapped:x}.");
        Console.WriteLine($"malloc_roundup(100) = {Heap.Roundup(100)}, malloc_roundup(40000) = {Heap.Roundup(40000)}\n");
        Console.Write(Heap.FormatVmstat());

        foreach (nint p in bufs.Where((_, i) => i % 2 == 1))
            Heap.Free((void*)p, packets);
        foreach (nint p in nodes)
            Heap.Free((void*)p, inodes);
        Heap.Free(big, scratch);
        Heap.Free(grown, scratch);
        Heap.FreePercpu(hits, counters);
        Heap.Vfree(table);
        region.Free(phys);
        Console.WriteLine("After freeing everything:");
        foreach (MallocTypeStats s in Heap.TypeStats().Where(s => s.Requests > 0))
            Console.WriteLine($"  {s.Type,-12} in use {s.InUse,5} blocks, {s.MemUse,8} bytes (high water {s.HighUse} bytes, {s.Requests} requests)");
        // Dangling pointers hide leaks from a conservative scan (a freed address is soon handed out again): wipe them.
        System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bufs).Clear();
        System.Runtime.InteropServices.CollectionsMarshal.AsSpan(nodes).Clear();
    }

    // kmemleak: leak a list, a cycle, a per-CPU object, a vmalloc area and a physical object; keep one block in a registered root and one
    // in a field of a live managed object; two scans of the whole process find the rest (the first primes checksums).
    private static void ShowLeakDetection()
    {
        Console.WriteLine("\nLeak detection (kmemleak, the whole process as roots):");
        var sessions = new MallocType("sessions", "demo leak detection");
        nint* root = (nint*)System.Runtime.InteropServices.NativeMemory.AllocZeroed(8);
        Kmemleak.Alloc(root, 8, 0); // a root: scanned, never reported (like a module's data)
        root[0] = (nint)Heap.Malloc(200, sessions); // reachable: not reported
        var owner = new SessionOwner();
        owner.Buffer = (nint)Heap.Malloc(512, sessions); // held by a managed object: not reported either
        using PhysRegion region = PhysRegion.Create(1 << 16); // physical objects are scanned while their region is mapped
        region.Map();
        Leak(sessions, region);

        Kmemleak.Write("minage=0"); // the default minimum age is 5 s
        Kmemleak.Scan();
        LeakScanResult result = Kmemleak.Scan();
        var mine = result.Leaks.Where(l => l.Type == "sessions" || l.Kind == LeakObjectKind.Phys).ToList();
        Console.Write(Indent(Kmemleak.ResultOf(mine, result.Stats).Summary()));
        LeakScanStats s = result.Stats;
        Console.WriteLine($"  The scan read {s.ProcessRootBytes / 1e6:F1} MB of process roots in {s.ProcessRootRanges} ranges and took"
            + $" {s.Duration.TotalMilliseconds:F1} ms (GC {s.GcTime.TotalMilliseconds:F1} ms).");
        string report = Kmemleak.Read();
        int end = report.IndexOf("unreferenced object", 1, StringComparison.Ordinal);
        Console.WriteLine("  First object of Kmemleak.Read():");
        Console.Write(Indent(end > 0 ? report[..end] : report));
        Kmemleak.Write("clear");
        GC.KeepAlive(owner);
    }

    // DIAGNOSTIC mode for one type: an off-by-one overrun, a write after free and a double free, each caught with the
    // kernel's message (collected from KmemDiagnostics instead of standard error).
    private static void ShowDiagnostic()
    {
        Console.WriteLine("\nDIAGNOSTIC mode for one type (redzones, poisoned freed blocks in a quarantine, the allocation log):");
        var parser = new MallocType("parser", "demo DIAGNOSTIC mode") { Diagnostic = true };
        var messages = new List<string>();
        Action<KmemMessageKind, string> collect = (_, text) => messages.Add(text);
        KmemDiagnostics.Message += collect;
        int quarantine = KmemOptions.QuarantineBlocks;
        try
        {
            byte* name = (byte*)Heap.Malloc(10, parser);
            name[10] = 0; // the terminating zero one byte past the end
            Heap.Free(name, parser);
            Print("an overrun by one byte, found at free:", messages);

            KmemOptions.QuarantineBlocks = 1;
            nint* token = (nint*)Heap.Malloc(32, parser);
            Heap.Free(token, parser);
            token[0] = 42; // a write through a stale pointer
            Heap.Free(Heap.Malloc(32, parser), parser); // the next free pushes the block out of the quarantine
            Print("a write after free, found when the block leaves the quarantine:", messages);

            void* twice = Heap.Malloc(64, parser);
            Heap.Free(twice, parser);
            try
            {
                Heap.Free(twice, parser);
            }
            catch (KmemPanicException)
            {
                // the panic's text went out through KmemDiagnostics too
            }
            Print("a double free:", messages);
        }
        finally
        {
            KmemDiagnostics.Message -= collect;
            KmemOptions.QuarantineBlocks = quarantine;
            parser.Diagnostic = false;
        }
    }

    private static void Print(string what, List<string> messages)
    {
        Console.WriteLine("  " + what);
        foreach (string m in messages)
            Console.Write(Indent(Indent(m)));
        messages.Clear();
    }

    private sealed class SessionOwner
    {
        public nint Buffer;
    }

    // The leaks are made in a frame of their own: once it returns, its locals are dead stack the scan does not read.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void Leak(MallocType sessions, PhysRegion region)
    {
        nint* head = null;
        for (int i = 0; i < 3; i++) // a leaked list: the head is a direct leak, the rest indirect
        {
            nint* node = (nint*)Heap.Malloc(48, sessions, MallocFlags.Zero);
            node[0] = (nint)head;
            head = node;
        }
        nint* a = (nint*)Heap.Malloc(32, sessions), b = (nint*)Heap.Malloc(32, sessions);
        a[0] = (nint)b; // a leaked cycle: one of them is chosen as its direct root
        b[0] = (nint)a;
        Heap.AllocPercpu(64, 8, sessions);
        Heap.Vmalloc(10_000, sessions);
        Kmemleak.AllocPhys(region.Alloc(64), 64, 1); // a physical object whose address nobody keeps
    }

    private static string Indent(string text) =>
        string.Join('\n', text.TrimEnd('\n').Split('\n').Select(l => "  " + l)) + "\n";
}

// KmemleakTests.cs — the leak detector: the kmemleak-test module port, valgrind's leak graphs, each API call, each
// command, the defences and the report format.
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Xunit;

namespace Kmem.Tests;

[Collection(KmemleakCollection.Name)]
public unsafe class KmemleakTests
{
    public KmemleakTests() => Leaks.Reset();

    [Fact]
    public void Port_of_kmemleak_test_reports_the_expected_objects_loaded_and_after_unload()
    {
        var kmalloc = Types.New();
        var vm = Types.New();
        var list = Types.New();
        var percpu = Types.New();
        using var data = new RootTable(4);

        // (1) two 32-byte blocks only "printed".
        for (int i = 0; i < 2; i++)
            Assert.Contains("0x", $"0x{(nuint)Heap.Malloc(32, kmalloc):x}");
        // (2-4) two each of 1024, 2048, 4096 bytes, held by nothing.
        foreach (nuint size in new nuint[] { 1024, 2048, 4096 })
            for (int i = 0; i < 2; i++)
                Heap.Malloc(size, kmalloc);
        // (6) five vmalloc(64) areas, held only by their vm_struct.
        for (int i = 0; i < 5; i++)
            Heap.Vmalloc(64, vm);
        // (7) ten zeroed 416-byte nodes on a list whose head is module data.
        nint head = 0;
        for (int i = 0; i < 10; i++)
        {
            byte* node = (byte*)Heap.Malloc(416, list, MallocFlags.Zero);
            *(nint*)(node + 25 * 8) = head; // the list link after 25 longs
            head = (nint)node;
        }
        data[0] = head;
        // (8) kmalloc(129) per CPU, kept in a per-CPU variable that is module data.
        PerCpuPtr moduleVar = Heap.AllocPercpu(8, 8, percpu);
        Kmemleak.NotLeak(moduleVar.Cookie); // the module's per-CPU area is a root while loaded
        for (int cpu = 0; cpu < PerCpuPtr.Copies; cpu++)
            *(nint*)moduleVar.ForCpu(cpu) = (nint)Heap.Malloc(129, kmalloc);
        // (9) a per-CPU object held by nothing.
        Heap.AllocPercpu(64, 4, percpu);

        LeakScanResult loaded = Leaks.ScanTwice();
        var mine = loaded.Of(kmalloc, vm, list, percpu);
        Assert.Equal(14, mine.Count); // 2 + 6 + 5 + 1, as the kernel's selftest counts
        Assert.Equal(new nuint[] { 32, 32, 1024, 1024, 2048, 2048, 4096, 4096 }, mine.Where(l => l.Kind == LeakObjectKind.Block).Select(l => l.Size));
        Assert.Equal(5, mine.Count(l => l.Kind == LeakObjectKind.Vmalloc && l.Size == 4096));
        Assert.Single(mine, l => l.Kind == LeakObjectKind.PerCpu && l.Size == 64);
        Assert.All(mine, l => Assert.True(l.IsNew));
        Assert.Matches(@"unreferenced object \(percpu\) 0x[0-9a-f]+ \(size 64\):\n.*\n  hex dump \(first 32 bytes on cpu 0\):", Kmemleak.Read());

        // "rmmod": the module's data and per-CPU area go away; the list and the per-CPU pointers leak.
        data.Unload();
        Heap.FreePercpu(moduleVar, percpu);
        LeakScanResult unloaded = Leaks.ScanTwice();
        var after = unloaded.Of(kmalloc, vm, list, percpu);
        Assert.Equal(14 + 10 + PerCpuPtr.Copies, after.Count);
        Assert.Equal(10, after.Count(l => l.Type == list.ShortDesc && l.Size == 448));
        Assert.Equal(PerCpuPtr.Copies, after.Count(l => l.Type == kmalloc.ShortDesc && l.Size == 160));
        Assert.Equal(10 + PerCpuPtr.Copies, after.Count(l => l.IsNew));
        // The list: its head is the direct leak, the other nine hang off it.
        Assert.Equal(1, after.Count(l => l.Type == list.ShortDesc && l.Direct));
        Kmemleak.Write("clear");
    }

    private static nint Mk(MallocType t, nint next)
    {
        nint* b = (nint*)Heap.Malloc(16, t, MallocFlags.Zero);
        b[0] = next;
        return (nint)b;
    }

    [Fact]
    public void Valgrind_leak_cases_interior_pointers_count_and_3_direct_2_indirect_leak()
    {
        var t = Types.New();
        using var p = new RootTable(10);
        p[1] = Mk(t, 0);                       // (1) reachable
        p[2] = Mk(t, Mk(t, 0));                // (2) reachable × 2
        Mk(t, 0);                              // (3) definitely lost
        Mk(t, Mk(t, 0));                       // (4) X direct, Y indirect
        p[5] = Mk(t, 0) + 1;                   // (5) interior: reachable here (LSan's rule)
        p[6] = Mk(t, Mk(t, 0) + 1);            // (6)
        p[7] = Mk(t, Mk(t, 0)) + 1;            // (7)
        p[8] = Mk(t, Mk(t, 0) + 1) + 1;        // (8)
        p[9] = Mk(t, Mk(t, 0) + 1);            // (9) then cleared
        p[9] = 0;
        var leaks = Leaks.ScanTwice().Of(t);
        Assert.Equal(5, leaks.Count);
        Assert.Equal(80u, (uint)leaks.Sum(l => (long)l.Size));
        Assert.Equal(3, leaks.Count(l => l.Direct));
        Assert.Equal(2, leaks.Count(l => !l.Direct));
        Kmemleak.Write("clear");
    }

    private static (nint A, nint B, nint C) Cycle(MallocType t)
    {
        nint* a = (nint*)Heap.Malloc(16, t, MallocFlags.Zero), b = (nint*)Heap.Malloc(16, t, MallocFlags.Zero), c = (nint*)Heap.Malloc(16, t, MallocFlags.Zero);
        b[0] = (nint)a;
        c[0] = (nint)b;
        a[0] = (nint)c;
        return ((nint)a, (nint)b, (nint)c);
    }

    [Fact]
    public void Valgrind_leak_cycle_every_unreachable_clique_gets_one_direct_root()
    {
        var t = Types.New();
        Cycle(t);                                   // (1) two separate cycles
        Cycle(t);
        var x = Cycle(t);                           // (2) one cycle points into the other
        var y = Cycle(t);
        ((nint*)Math.Max(x.A, y.A))[1] = Math.Min(x.A, y.A) == x.A ? x.B : y.B;
        var u = Cycle(t);                           // (3) linked both ways
        var v = Cycle(t);
        ((nint*)u.A)[1] = v.A;
        ((nint*)v.A)[1] = u.A;
        var leaks = Leaks.ScanTwice().Of(t);
        Assert.Equal(18, leaks.Count);
        Assert.Equal(288, leaks.Sum(l => (long)l.Size));
        Assert.Equal(4, leaks.Count(l => l.Direct));
        Assert.Equal(14, leaks.Count(l => !l.Direct));
        Kmemleak.Write("clear");
    }

    [Fact]
    public void Valgrind_leak_tree_two_subtrees_cut_off()
    {
        var t = Types.New();
        using var root = new RootTable(1);
        nint Node(nint l, nint r)
        {
            nint* n = (nint*)Heap.Malloc(16, t);
            n[0] = l;
            n[1] = r;
            return (nint)n;
        }
        nint d = Node(0, 0), e = Node(0, 0), f = Node(0, 0), g = Node(0, 0);
        nint b = Node(d, e), c = Node(f, g);
        nint a = Node(b, c);
        root[0] = a;
        ((nint*)b)[0] = 0; // D leaks alone
        ((nint*)a)[1] = 0; // C leaks with F and G
        var leaks = Leaks.ScanTwice().Of(t);
        Assert.Equal(4, leaks.Count);
        Assert.Equal(new[] { d, c }.Order(), leaks.Where(l => l.Direct).Select(l => (nint)l.Address).Order());
        Assert.Equal(new[] { f, g }.Order(), leaks.Where(l => !l.Direct).Select(l => (nint)l.Address).Order());
        Kmemleak.Write("clear");
    }

    [Fact]
    public void Read_prints_the_kernels_format_line_by_line()
    {
        var t = Types.New();
        byte* p = (byte*)Heap.Malloc(32, t, MallocFlags.Zero); int line = LineHere();
        "hello, kmemleak!"u8.CopyTo(new Span<byte>(p + 8, 16));
        Leaks.ScanTwice();
        string report = Kmemleak.Read();
        string addr = $"0x{(nuint)p:x}";
        int at = report.IndexOf($"unreferenced object {addr} (size 32):\n", StringComparison.Ordinal);
        Assert.True(at >= 0, report);
        string[] lines = report[at..].Split('\n');
        Assert.Equal($"unreferenced object {addr} (size 32):", lines[0]);
        string comm = Thread.CurrentThread.Name ?? (Environment.CurrentManagedThreadId == 1 ? AppDomain.CurrentDomain.FriendlyName : "thread " + Environment.CurrentManagedThreadId);
        Assert.Matches($"^  comm \"{Regex.Escape(comm)}\", pid [1-9][0-9]*, jiffies [0-9]+$", lines[1]);
        Assert.Equal("  hex dump (first 32 bytes):", lines[2]);
        Assert.Equal("    00 00 00 00 00 00 00 00 68 65 6c 6c 6f 2c 20 6b  ........hello, k", lines[3]);
        Assert.Equal("    6d 65 6d 6c 65 61 6b 21 00 00 00 00 00 00 00 00  memleak!........", lines[4]);
        Assert.Matches("^  backtrace \\(crc [0-9a-f]+\\):$", lines[5]);
        Assert.Equal($"    {nameof(Read_prints_the_kernels_format_line_by_line)} at {ThisFile()}:{line}", lines[6]);
        Kmemleak.Write("clear");
    }

    private static int LineHere([System.Runtime.CompilerServices.CallerLineNumber] int line = 0) => line;

    private static string ThisFile([System.Runtime.CompilerServices.CallerFilePath] string file = "") => file;
}

// ProcessRootsInternalsTests.cs — the pieces of the process-root scan in the test host: which ranges are roots (Kmem's
// own memory and dead stack never), the vectorized word filter at its edges, /proc parsing, and other OSes' fallback.
using Kmem.Leak;
using Kmem.Pages;
using Kmem.Platform;
using Xunit;

namespace Kmem.Tests;

[Collection(KmemleakCollection.Name)]
public unsafe class ProcessRootsInternalsTests
{
    public ProcessRootsInternalsTests() => Leaks.Reset();

    private static bool Covered(List<RootRange> roots, nuint address) =>
        roots.Any(r => address - ~r.StartComplement < r.Length);

    [Fact]
    public void Roots_leave_out_kmems_own_regions_the_scanners_threads_and_the_dead_part_of_the_callers_stack()
    {
        MallocType t = Types.New();
        Heap.Free(Heap.Malloc(64, t), t); // the heap and this thread's cache exist
        int marker = 0;
        nuint here = (nuint)(&marker);
        int tid = OsPages.Provider.CurrentThreadId();
        List<(int, nuint)> workers = RootReader.WorkerStacks();
        List<RootRange> roots = ProcessRoots.Collect(OsPages.Process, stacks: true, tid, ~here, workers);
        Assert.NotEmpty(roots);
        foreach ((nuint startC, nuint length) in OwnRegions.Snapshot())
            foreach (RootRange r in roots)
            {
                nuint a = ~startC, b = ~r.StartComplement;
                Assert.False(a < b + r.Length && b < a + length, $"root 0x{b:x}+{r.Length} overlaps Kmem's 0x{a:x}+{length}");
            }
        Assert.True(Covered(roots, here + 8), "the caller's live stack is a root");
        Assert.False(Covered(roots, here - 256), "below the caller's mark is the detector's own frames");
        foreach ((_, nuint stackC) in workers)
            Assert.False(Covered(roots, ~stackC), "a scanner worker's stack is never a root");
        Assert.All(roots, r => Assert.Equal(0u, (uint)(~r.StartComplement & 7)));

        List<RootRange> noStacks = ProcessRoots.Collect(OsPages.Process, stacks: false, tid, ~here, workers);
        Assert.False(Covered(noStacks, here + 8), "stack=off: no thread stack is a root");
    }

    [Fact]
    public void The_word_filter_keeps_exactly_the_words_in_its_ranges_in_the_vector_loop_and_the_tail()
    {
        var f = new WordFilter(kmemBase: unchecked((nuint)0x7000_0000_0000UL), kmemSize: 0x1000_0000, foreignMin: 0x5000_0000, foreignSpan: 0x100,
            physMin: unchecked((nuint)0x0009_C3A5_0000_0000UL), physSpan: 0x2000);
        ulong[] inside = { 0x7000_0000_0000, 0x7000_0FFF_FFFF, 0x5000_0000, 0x5000_00FF, 0x0009_C3A5_0000_0000, 0x0009_C3A5_0000_1FFF };
        ulong[] outside = { 0x6FFF_FFFF_FFFF, 0x7000_1000_0000, 0x4FFF_FFFF, 0x5000_0100, 0x0009_C3A4_FFFF_FFFF, 0x0009_C3A5_0000_2000, 0, ulong.MaxValue };
        var words = new ulong[67]; // 4 vector blocks of 16 and a tail of 3
        var expected = new List<ulong>();
        var rnd = new Random(3);
        for (int i = 0; i < words.Length; i++)
        {
            bool hit = rnd.Next(5) == 0;
            words[i] = hit ? inside[rnd.Next(inside.Length)] : outside[rnd.Next(outside.Length)];
            if (hit)
                expected.Add(~words[i]);
        }
        words[66] = inside[0];
        expected.Add(~inside[0]);
        var found = new List<ulong>();
        fixed (ulong* p = words)
            RootReader.Filter(p, (nuint)words.Length, f, found);
        Assert.Equal(expected, found);
    }

    [Theory]
    [InlineData("202 0x3 0x7f1 0x0 0x0 0x0 0x0 0x7ffd1234abc0 0x7f00aa\n", 0x7ffd1234abc0UL)]
    [InlineData("-1 0x7ffc00001000 0x401000\n", 0x7ffc00001000UL)]
    [InlineData("running\n", 0UL)]
    [InlineData("", 0UL)]
    public void Stack_pointers_are_read_from_the_syscall_file(string text, ulong sp) =>
        Assert.Equal((nuint)sp, LinuxProcessMemory.ParseStackPointer(text));

    [Fact]
    public void Writable_mappings_come_in_address_order_with_the_main_stack_named()
    {
        List<ProcessMapping> maps = new LinuxProcessMemory().WritableMappings();
        Assert.NotEmpty(maps);
        for (int i = 1; i < maps.Count; i++)
            Assert.True(~maps[i].StartComplement >= ~maps[i - 1].EndComplement);
        Assert.Single(maps, m => m.IsMainStack);
        Assert.DoesNotContain(maps, m => m.Device);
    }

    /// <summary>A process view whose /proc cannot be read (out of file descriptors, say).</summary>
    private sealed class FailingProcessMemory : IProcessMemory
    {
        public bool IsSupported => true;
        public List<ProcessMapping> WritableMappings() => throw new IOException("Too many open files");
        public List<ThreadStack> Threads() => new();
        public nint Read(nuint addressComplement, byte* buffer, nuint length) => -1;
    }

    /// <summary>A process view that lists mappings but can read none of them (reads refused).</summary>
    private sealed class RefusingProcessMemory : IProcessMemory
    {
        public bool IsSupported => true;
        public List<ProcessMapping> WritableMappings() => new LinuxProcessMemory().WritableMappings();
        public List<ThreadStack> Threads() => new();
        public nint Read(nuint addressComplement, byte* buffer, nuint length) => -1;
    }

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern nint mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern int mprotect(nint addr, nuint length, int prot);

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern int munmap(nint addr, nuint length);

    /// <summary>The real view, except that one mapping is made inaccessible right after the mappings are listed: the
    /// race of another thread protecting or unmapping memory mid-scan, made certain.</summary>
    private sealed class VanishingProcessMemory(nint victim, nuint length) : IProcessMemory
    {
        private readonly LinuxProcessMemory _real = new();
        public bool IsSupported => true;
        public List<ProcessMapping> WritableMappings()
        {
            List<ProcessMapping> maps = _real.WritableMappings();
            mprotect(victim, length, 0);
            return maps;
        }
        public List<ThreadStack> Threads() => _real.Threads();
        public nint Read(nuint addressComplement, byte* buffer, nuint length) => _real.Read(addressComplement, buffer, length);
    }

    [Fact]
    public void Memory_protected_after_it_was_listed_is_skipped_and_counted_not_a_fault()
    {
        const nuint length = 256 << 10;
        nint victim = mmap(0, length, 3, 0x22, -1, 0);
        Assert.NotEqual(-1, victim);
        new Span<byte>((void*)victim, (int)length).Fill(0x5a);
        OsPages.OverrideProcess(new VanishingProcessMemory(victim, length));
        try
        {
            Kmemleak.Write("process=on");
            LeakScanResult r = Kmemleak.Scan();
            Assert.True(r.Stats.ProcessRoots);
            Assert.True(r.Stats.ProcessRootBytesUnreadable >= (long)length, $"{r.Stats.ProcessRootBytesUnreadable} bytes skipped");
            Assert.True(r.Stats.ProcessRootBytes > 1 << 20);
        }
        finally
        {
            OsPages.OverrideProcess(null);
            munmap(victim, length);
            Leaks.Reset();
        }
    }

    [Fact]
    public void When_the_process_cannot_be_read_the_scan_says_why_and_uses_registered_roots()
    {
        var said = new List<string>();
        Action<KmemMessageKind, string> listen = (_, text) => { lock (said) said.Add(text); };
        KmemDiagnostics.Message += listen;
        try
        {
            Kmemleak.Write("process=on");
            MallocType t = Types.New();
            using var table = new RootTable(1);
            table[0] = (nint)Heap.Malloc(64, t);
            foreach (IProcessMemory view in new IProcessMemory[] { new FailingProcessMemory(), new RefusingProcessMemory() })
            {
                OsPages.OverrideProcess(view);
                LeakScanResult r = Leaks.ScanTwice();
                Assert.False(r.Stats.ProcessRoots);
                Assert.Empty(r.Of(t)); // the registered root still holds it
            }
            Assert.Contains(said, m => m.Contains("cannot read the process roots (Too many open files)", StringComparison.Ordinal));
            Assert.Contains(said, m => m.Contains("cannot read the process roots (no byte of the process could be read", StringComparison.Ordinal));
            OsPages.OverrideProcess(null);
            Assert.True(Kmemleak.Scan().Stats.ProcessRoots); // and back to normal
            Heap.Free((void*)table[0], t);
        }
        finally
        {
            OsPages.OverrideProcess(null);
            KmemDiagnostics.Message -= listen;
            Leaks.Reset();
        }
    }

    [Fact]
    public void Without_a_process_view_the_detector_says_so_once_and_scans_registered_roots()
    {
        var said = new List<string>();
        Action<KmemMessageKind, string> listen = (_, text) => { lock (said) said.Add(text); };
        KmemDiagnostics.Message += listen;
        OsPages.OverrideProcess(new UnsupportedProcessMemory());
        try
        {
            Kmemleak.Write("process=on");
            Assert.False(Kmemleak.ProcessRootsSupported);
            MallocType t = Types.New();
            using var table = new RootTable(1);
            table[0] = (nint)Heap.Malloc(64, t);
            LeakScanResult r = Leaks.ScanTwice();
            Assert.False(r.Stats.ProcessRoots);
            Assert.Equal(0, r.Stats.ProcessRootBytes);
            Assert.Empty(r.Of(t)); // the registered root still holds it
            Assert.Single(said, m => m.Contains("process roots are not available", StringComparison.Ordinal));
            Heap.Free((void*)table[0], t);
        }
        finally
        {
            OsPages.OverrideProcess(null);
            KmemDiagnostics.Message -= listen;
            Leaks.Reset();
        }
    }
}

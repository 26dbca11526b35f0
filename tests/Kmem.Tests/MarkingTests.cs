// MarkingTests.cs — the scan's fast paths give the answers of the plain ones: marking on every core against marking on
// the scanning thread, the previous classification reused only when nothing it depends on changed, and reports made
// when first read that still say what the scan found.
using System.Runtime.InteropServices;
using Kmem.Leak;
using Xunit;

namespace Kmem.Tests;

[Collection(KmemleakCollection.Name)]
public unsafe class MarkingTests
{
    public MarkingTests() => Leaks.Reset();

    private static bool Reported(LeakScanResult r, void* p) => r.Leaks.Any(l => l.Address == (nuint)p);

    // Allocates slabs' worth of zeroed blocks of one size, keeps those of the slabs that came out wholly the test's (in
    // address order) and frees the rest; returns the blocks kept and how many slabs they fill.
    private static (nint[] Blocks, int Slabs) BlocksOfWholeSlabs(MallocType t, nuint size, int slabsWorth)
    {
        int perSlab = (int)Kmem.Slabs.SizeClasses.BlocksPerSlab(Kmem.Slabs.SizeClasses.ClassOf(size));
        var all = new nint[slabsWorth * perSlab];
        for (int i = 0; i < all.Length; i++)
            all[i] = (nint)Heap.Malloc(size, t, MallocFlags.Zero);
        var whole = all.GroupBy(p => Kmem.Pages.KmemMap.UnitOf((void*)p)).Where(g => g.Count() == perSlab).ToList();
        nint[] blocks = whole.SelectMany(g => g).Order().ToArray();
        foreach (nint p in all.Except(blocks))
            Heap.Free((void*)p, t);
        return (blocks, whole.Count);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Serial_and_parallel_marking_report_the_same_objects(bool parallel)
    {
        var t = Types.New(test: parallel ? "marking-parallel" : "marking-serial");
        using var root = new RootTable(1);
        var blocks = new List<nint>();
        nint Block(nuint size)
        {
            nint b = (nint)Heap.Malloc(size, t, MallocFlags.Zero);
            blocks.Add(b);
            return b;
        }

        // A tree of 3000 blocks reachable from the root table, with 20 leaked chains of 10 blocks allocated among its
        // nodes, so that every slab holds both.
        const int TreeSize = 3000;
        var tree = new nint[TreeSize];
        var chainHeads = new List<nint>();
        for (int i = 0; i < TreeSize; i++)
        {
            tree[i] = Block(64);
            if (i % 150 == 149)
            {
                nint head = Block(128), at = head;
                for (int k = 1; k < 10; k++)
                    at = *(nint*)at = Block(128);
                chainHeads.Add(head);
            }
        }
        for (int i = 0; i < TreeSize; i++)
        {
            if (2 * i + 1 < TreeSize)
                ((nint*)tree[i])[0] = tree[2 * i + 1];
            if (2 * i + 2 < TreeSize)
                ((nint*)tree[i])[1] = tree[2 * i + 2];
        }
        root[0] = tree[0];

        // A leaked cycle: one member is direct.
        nint a = Block(64), b = Block(64), c = Block(64);
        *(nint*)a = b;
        *(nint*)b = c;
        *(nint*)c = a;
        // An ignored block is not scanned; a no-scan block (reached from the tree) is not either.
        nint ignored = Block(64), behindIgnored = Block(64);
        *(nint*)ignored = behindIgnored;
        Kmemleak.Ignore((void*)ignored);
        nint noScan = Block(64), behindNoScan = Block(64);
        *(nint*)noScan = behindNoScan;
        Kmemleak.NoScan((void*)noScan);
        ((nint*)tree[5])[2] = noScan;
        // Words the lanes leave to the serial path: a foreign object, a large block (by an interior pointer) and a
        // vmalloc descriptor, each reached from a tree block, each holding what it keeps alive.
        nint* foreign = (nint*)NativeMemory.AllocZeroed(64);
        Kmemleak.Alloc(foreign, 64, 1);
        ((nint*)tree[7])[2] = (nint)foreign;
        foreign[0] = Block(64);
        nint* large = (nint*)Heap.Malloc(64 << 10, t, MallocFlags.Zero);
        ((nint*)tree[9])[2] = (nint)large + 100;
        large[0] = Block(64);
        void* area = Heap.Vmalloc(10_000, t), alone = Heap.Vmalloc(100, t);
        ((nint*)tree[11])[2] = (nint)Heap.FindVmArea(area)!.Value.Descriptor;
        // An interior pointer, and a block's pointer to itself (which does not keep it).
        nint interior = Block(256);
        ((nint*)tree[13])[2] = interior + 40;
        nint self = Block(64);
        *(nint*)self = self;

        LeakScanner.ParallelMarkingOverride = parallel;
        long rounds = LeakScanner.ParallelRounds;
        try
        {
            LeakScanResult r = Leaks.ScanTwice();
            Assert.Equal(parallel, LeakScanner.ParallelRounds > rounds);
            List<LeakReport> ours = r.Of(t);
            var expectedDirect = new HashSet<nuint>(chainHeads.Select(h => (nuint)h)) { (nuint)behindIgnored, (nuint)behindNoScan, (nuint)self, (nuint)alone };
            Assert.Equal(20 * 10 + 3 + 4, ours.Count);
            Assert.True(expectedDirect.SetEquals(ours.Where(l => l.Direct && l.Address != (nuint)a && l.Address != (nuint)b && l.Address != (nuint)c)
                .Select(l => l.Address)));
            Assert.Single(ours, l => l.Direct && (l.Address == (nuint)a || l.Address == (nuint)b || l.Address == (nuint)c));
            foreach (nint n in tree)
                Assert.False(Reported(r, (void*)n));
            Assert.False(Reported(r, (void*)noScan));
            Assert.False(Reported(r, (void*)ignored));
            Assert.False(Reported(r, foreign));
            Assert.False(Reported(r, (void*)foreign[0]));
            Assert.False(Reported(r, large));
            Assert.False(Reported(r, (void*)large[0]));
            Assert.False(Reported(r, area));
            Assert.False(Reported(r, (void*)interior));
        }
        finally
        {
            LeakScanner.ParallelMarkingOverride = null;
            Kmemleak.Free(foreign);
            NativeMemory.Free(foreign);
            Heap.Free(large, t);
            Heap.Vfree(area);
            Heap.Vfree(alone);
            foreach (nint p in blocks)
                Heap.Free((void*)p, t);
            Kmemleak.Write("clear");
        }
    }

    [Fact]
    public void Parallel_marking_sweeps_a_forward_chain_and_hands_a_backward_chain_back()
    {
        var t = Types.New();
        using var root = new RootTable(1);
        // The chain takes only slabs all of whose blocks are the test's (other tests' blocks elsewhere cannot split what
        // a sweep meets), in address order, whatever order the heap gave the blocks out in.
        (nint[] nodes, int whole) = BlocksOfWholeSlabs(t, 64, 6);
        Assert.True(whole >= 3, $"{whole} whole slabs");
        int N = nodes.Length;
        LeakScanner.ParallelMarkingOverride = true;
        try
        {
            foreach (bool forward in new[] { true, false })
            {
                // Forward: each block refers to the next one up, so a sweep goes on with the chain to the end of its
                // slab (and beyond, where no lane has claimed the next slab yet). Backward (a list built by prepending):
                // each refers to the one below, so a sweep would trace one block.
                for (int i = 0; i < N; i++)
                    *(nint*)nodes[i] = forward ? (i + 1 < N ? nodes[i + 1] : 0) : (i > 0 ? nodes[i - 1] : 0);
                root[0] = forward ? nodes[0] : nodes[N - 1];
                long sweeps = LeakScanner.Sweeps, handedBack = LeakScanner.RoundsHandedBack, rounds = LeakScanner.ParallelRounds;
                LeakScanResult r = Leaks.ScanTwice();
                Assert.Empty(r.Of(t));
                Assert.True(LeakScanner.ParallelRounds > rounds);
                // Forward: about a sweep a slab per round (two lanes); backward: a sweep, then the scanning thread. One
                // block a sweep would be thousands of sweeps.
                Assert.True(LeakScanner.Sweeps - sweeps < 200, $"{LeakScanner.Sweeps - sweeps} sweeps ({(forward ? "forward" : "backward")})");
                // The backward chain is handed back to the scanning thread's depth-first trace; the forward one is not.
                Assert.Equal(!forward, LeakScanner.RoundsHandedBack > handedBack);
            }
            // A chain cut in the middle: its upper half is reported, headed by the block after the cut.
            for (int i = 0; i < N; i++)
                *(nint*)nodes[i] = i + 1 < N && i != N / 2 ? nodes[i + 1] : 0;
            root[0] = nodes[0];
            LeakScanResult cut = Leaks.ScanTwice();
            List<LeakReport> ours = cut.Of(t);
            Assert.Equal(N - N / 2 - 1, ours.Count);
            Assert.Single(ours, l => l.Direct);
            Assert.Equal((nuint)nodes[N / 2 + 1], ours.Single(l => l.Direct).Address);
        }
        finally
        {
            LeakScanner.ParallelMarkingOverride = null;
            foreach (nint p in nodes)
                Heap.Free((void*)p, t);
            Kmemleak.Write("clear");
        }
    }

    [Theory]
    [InlineData(64, false)]
    [InlineData(64, true)]
    [InlineData(80, false)]
    [InlineData(80, true)]
    public void Lanes_follow_a_reference_in_any_word_of_a_block_with_or_without_foreign_objects(int size, bool foreign)
    {
        // A forward chain over whole slabs of the test's own blocks, each block's link in a different word (80-byte blocks
        // have two words after the vector part). The head is a root by NotLeak: with no foreign object registered the
        // lanes test kmem_map's bounds alone, with one they test all three ranges.
        var t = Types.New();
        (nint[] nodes, int whole) = BlocksOfWholeSlabs(t, (nuint)size, 4);
        Assert.True(whole >= 2, $"{whole} whole slabs");
        int words = size / 8;
        for (int i = 0; i + 1 < nodes.Length; i++)
            ((nint*)nodes[i])[i % words] = nodes[i + 1];
        Kmemleak.NotLeak((void*)nodes[0]);
        nint* other = null;
        if (foreign)
        {
            other = (nint*)NativeMemory.AllocZeroed(64);
            Kmemleak.Alloc(other, 64, 0); // a root of its own, referring to nothing
        }
        LeakScanner.ParallelMarkingOverride = true;
        long rounds = LeakScanner.ParallelRounds;
        try
        {
            LeakScanResult r = Leaks.ScanTwice();
            Assert.True(LeakScanner.ParallelRounds > rounds);
            Assert.Empty(r.Of(t));
        }
        finally
        {
            LeakScanner.ParallelMarkingOverride = null;
            if (other != null)
            {
                Kmemleak.Free(other);
                NativeMemory.Free(other);
            }
            // The links go first: a block handed out again without M_ZERO would still refer to its old neighbours, and
            // so would tie together blocks a later test means to be unrelated.
            foreach (nint p in nodes)
                NativeMemory.Clear((void*)p, (nuint)size);
            foreach (nint p in nodes)
                Heap.Free((void*)p, t);
            Kmemleak.Write("clear");
        }
    }

    [Fact]
    public void A_steady_scan_keeps_the_classification_and_a_change_of_the_leaks_or_of_a_scan_area_redoes_it()
    {
        var t = Types.New();
        // Two leaked chains of three blocks, and a leaked foreign object pointing at a fourth block.
        nint* x = (nint*)Heap.Malloc(64, t, MallocFlags.Zero), x2 = (nint*)Heap.Malloc(64, t, MallocFlags.Zero),
            x3 = (nint*)Heap.Malloc(64, t, MallocFlags.Zero);
        nint* y = (nint*)Heap.Malloc(64, t, MallocFlags.Zero), y2 = (nint*)Heap.Malloc(64, t, MallocFlags.Zero),
            y3 = (nint*)Heap.Malloc(64, t, MallocFlags.Zero);
        x[0] = (nint)x2;
        x2[0] = (nint)x3;
        y[0] = (nint)y2;
        y2[0] = (nint)y3;
        nint* foreign = (nint*)NativeMemory.AllocZeroed(64);
        void* held = Heap.Malloc(64, t, MallocFlags.Zero);
        foreign[0] = (nint)held;
        Kmemleak.Alloc(foreign, 64, 1);
        try
        {
            LeakScanResult first = Leaks.ScanTwice();
            bool Direct(LeakScanResult r, void* p) => r.Leaks.Single(l => l.Address == (nuint)p).Direct;
            Assert.True(Direct(first, x) && !Direct(first, x2) && !Direct(first, x3));
            Assert.True(Direct(first, foreign) && !Direct(first, held));

            // Nothing changed: the same objects, the same classes (the previous classification is reused).
            long reused = LeakScanner.ClassificationsReused;
            LeakScanResult steady = Kmemleak.Scan();
            Assert.Equal(reused + 1, LeakScanner.ClassificationsReused);
            Assert.Equal(first.Leaks.Select(l => (l.Address, l.Direct)), steady.Leaks.Select(l => (l.Address, l.Direct)));

            // A leak less: x2 is now the head of its chain.
            Heap.Free(x, t);
            LeakScanResult fewer = Kmemleak.Scan();
            Assert.Equal(reused + 1, LeakScanner.ClassificationsReused); // classified afresh
            Assert.False(Reported(fewer, x));
            Assert.True(Direct(fewer, x2) && !Direct(fewer, x3));
            Assert.True(Direct(fewer, y) && !Direct(fewer, y2));

            // The same leaks, but the foreign object's scan area leaves out its pointer: held has no referrer left.
            Kmemleak.ScanArea(foreign + 1, 8);
            LeakScanResult narrowed = Kmemleak.Scan();
            Assert.Equal(fewer.Leaks.Select(l => l.Address), narrowed.Leaks.Select(l => l.Address));
            Assert.True(Direct(narrowed, held));
        }
        finally
        {
            Kmemleak.Free(foreign);
            NativeMemory.Free(foreign);
            foreach (nint* p in new[] { x2, x3, y, y2, y3, (nint*)held })
                Heap.Free(p, t);
            Kmemleak.Write("clear");
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_block_does_not_inherit_the_scan_areas_of_a_freed_block_in_its_slot(bool parallel)
    {
        var t = Types.New();
        nint* first = (nint*)Heap.Malloc(64, t, MallocFlags.Zero);
        Kmemleak.ScanArea(first, 8); // only word 0 of this block is scanned
        Heap.Free(first, t);
        nint* second = (nint*)Heap.Malloc(64, t, MallocFlags.Zero);
        Assert.True(first == second, "the thread's free list hands the slot out again");
        void* child = Heap.Malloc(64, t);
        second[5] = (nint)child; // outside the freed block's area: the new block is scanned whole
        using var root = new RootTable(1);
        root[0] = (nint)second;
        LeakScanner.ParallelMarkingOverride = parallel;
        try
        {
            LeakScanResult r = Leaks.ScanTwice();
            Assert.False(Reported(r, child));
            Assert.False(Reported(r, second));
            // The stale list was dropped when the scan started.
            Assert.False(LeakScanner.SlabAreas.ContainsKey((nuint)((byte*)second - Kmem.Pages.KmemMap.Base)));
        }
        finally
        {
            LeakScanner.ParallelMarkingOverride = null;
            Heap.Free(child, t);
            Heap.Free(second, t);
            Kmemleak.Write("clear");
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_white_block_whose_contents_changed_gets_a_second_chance_with_serial_or_parallel_sums(bool parallel)
    {
        var t = Types.New();
        // Two unreferenced blocks, each the only holder of a child: one is left alone, one is written between scans.
        nint* still = (nint*)Heap.Malloc(64, t, MallocFlags.Zero), changing = (nint*)Heap.Malloc(64, t, MallocFlags.Zero);
        void* stillChild = Heap.Malloc(64, t, MallocFlags.Zero), changingChild = Heap.Malloc(64, t, MallocFlags.Zero);
        still[0] = (nint)stillChild;
        changing[0] = (nint)changingChild;
        LeakScanner.ParallelMarkingOverride = parallel;
        long sums = LeakScanner.ParallelSums;
        try
        {
            Kmemleak.Scan(); // primes the checksums: every white block is new to them, so none is reported yet
            changing[3] = 12345;
            LeakScanResult r = Kmemleak.Scan();
            Assert.Equal(parallel, LeakScanner.ParallelSums > sums);
            Assert.True(Reported(r, still));
            Assert.True(Reported(r, stillChild));
            // Changed since the last scan: gray for this scan, and so is what it points to.
            Assert.False(Reported(r, changing));
            Assert.False(Reported(r, changingChild));
            r = Kmemleak.Scan();
            Assert.True(Reported(r, changing));
            Assert.True(Reported(r, changingChild));
        }
        finally
        {
            LeakScanner.ParallelMarkingOverride = null;
            Heap.Free(stillChild, t);
            Heap.Free(changingChild, t);
            Heap.Free(still, t);
            Heap.Free(changing, t);
            Kmemleak.Write("clear");
        }
    }

    [Fact]
    public void A_scan_whose_lanes_fail_while_summing_leaves_the_changed_blocks_their_second_chance()
    {
        var t = Types.New();
        nint* changing = (nint*)Heap.Malloc(64, t, MallocFlags.Zero);
        LeakScanner.ParallelMarkingOverride = true;
        try
        {
            Kmemleak.Scan(); // primes the checksum
            changing[3] = 12345;
            LeakScanner.SumLaneFault = static _ => throw new InvalidOperationException("a lane failed");
            Assert.Throws<InvalidOperationException>(() => Kmemleak.Scan()); // its lane stored the new sum first
            LeakScanner.SumLaneFault = null;
            // The failed scan's sums are dropped: the block is still changed for the next scan, which does not report it.
            Assert.False(Reported(Kmemleak.Scan(), changing));
            Assert.True(Reported(Kmemleak.Scan(), changing));
        }
        finally
        {
            LeakScanner.SumLaneFault = null;
            LeakScanner.ParallelMarkingOverride = null;
            Heap.Free(changing, t);
            Kmemleak.Write("clear");
        }
    }

    [Fact]
    public void Reports_are_made_when_read_and_say_what_the_scan_found()
    {
        var t = Types.New();
        void* first = Heap.Malloc(64, t), second = Heap.Malloc(64, t);
        Kmemleak.Scan(); // primes the checksums
        LeakScanResult r = Kmemleak.Scan();
        Heap.Free(first, t); // after the scan, before its reports are read
        try
        {
            IReadOnlyList<LeakReport> fresh = r.NewLeaks; // read before Leaks
            Assert.True(Reported(r, first));
            Assert.True(Reported(r, second));
            Assert.Equal(r.Leaks.Where(l => l.IsNew).Select(l => l.Address), fresh.Select(l => l.Address));
            Assert.Contains(fresh, l => l.Address == (nuint)first && l.Type == t.ShortDesc && l.Size == 64);
            Assert.Same(r.Leaks, r.Leaks);
            // What is left now is Current's business: the freed block is gone from it.
            LeakScanResult now = Kmemleak.Current();
            Assert.False(Reported(now, first));
            Assert.True(Reported(now, second));
        }
        finally
        {
            Heap.Free(second, t);
            Kmemleak.Write("clear");
        }
    }

    [Fact]
    public void Slots_at_the_edges_of_bitmap_words_and_of_a_slab_are_decided_like_any_other()
    {
        // 48-byte blocks: 5461 to a slab, so a slab's last bitmap word is partial (21 slots). Two slabs' worth, every
        // block held by the root table but those in the first or last slot of a 64-slot word or of the slab, which leak
        // (the scan looks at a word's 64 slots at once, and must not miss a block at either end of a word or a slab).
        var t = Types.New();
        const int Size = 48;
        int perSlab = (int)Slabs.SizeClasses.BlocksPerSlab(Slabs.SizeClasses.ClassOf(Size));
        Assert.NotEqual(0, perSlab % 64);
        int count = 2 * perSlab + 64;
        using var root = new RootTable(count);
        var leaked = new HashSet<nuint>();
        var all = new List<nint>();
        try
        {
            for (int i = 0; i < count; i++)
            {
                nint p = (nint)Heap.Malloc(Size, t, MallocFlags.Zero);
                all.Add(p);
                uint slot = (uint)(((nuint)p & Pages.KmemMap.UnitMask) / Size);
                if (slot % 64 is 0 or 63 || slot == perSlab - 1)
                    leaked.Add((nuint)p);
                else
                    root[i] = p;
            }
            Assert.Contains(all, p => (uint)(((nuint)p & Pages.KmemMap.UnitMask) / Size) == perSlab - 1);

            LeakScanResult r = Leaks.ScanTwice();
            var reported = r.Of(t).Select(l => l.Address).ToHashSet();
            Assert.True(leaked.SetEquals(reported), $"{leaked.Count} leaked, {reported.Count} reported, {leaked.Except(reported).Count()} missed");
            Assert.Equal(leaked.Count, r.Tally(t.ShortDesc).OfType);
        }
        finally
        {
            for (int i = 0; i < count; i++)
                root[i] = 0;
            foreach (nint p in all)
                Heap.Free((void*)p, t);
            Kmemleak.Write("clear");
        }
    }

    [Fact]
    public void A_held_result_keeps_its_findings_and_a_collected_one_lends_its_list_to_a_later_scan()
    {
        var t = Types.New();
        var leaked = new List<nint>();
        for (int i = 0; i < 60; i++)
            leaked.Add((nint)Heap.Malloc(64, t, MallocFlags.Zero));
        int freed = 0;
        try
        {
            // Held, its reports not made yet: later scans must not write into its list.
            LeakScanResult held = Leaks.ScanTwice();
            Assert.Equal(60, held.Tally(t.ShortDesc).OfType);
            var heldAddresses = leaked.Select(p => (nuint)p).ToHashSet();
            for (int i = 0; i < 10; i++)
                *(nint*)leaked[i] = leaked[i + 10]; // the leaks change: later findings differ from the held ones
            long reused = LeakScanner.FindingsReused;
            // Scans whose results nobody keeps, each finding one leak fewer than the one before (a list of its own).
            freed = ScanAndDrop(t, leaked, 6);
            Assert.True(LeakScanner.FindingsReused > reused, "no later scan reused the list of a collected result");
            Assert.Equal(heldAddresses, held.Of(t).Select(l => l.Address).ToHashSet());
            Assert.Equal(60, held.Of(t).Count(l => l.Direct));
        }
        finally
        {
            foreach (nint p in leaked.Take(leaked.Count - freed))
                Heap.Free((void*)p, t);
            Kmemleak.Write("clear");
        }
    }

    // Scans whose results nobody keeps, each after a GC (as gc=on does; the tests scan with gc=off) and after freeing the
    // last leaked block not freed yet; returns how many were freed (from the end of the list).
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static int ScanAndDrop(MallocType t, List<nint> leaked, int scans)
    {
        for (int i = 0; i < scans; i++)
        {
            Heap.Free((void*)leaked[^(i + 1)], t);
            GC.Collect();
            _ = Kmemleak.Scan().LeakCount;
        }
        return scans;
    }

    [Fact]
    public void A_scan_that_finds_what_the_previous_one_did_shares_its_findings_and_a_later_change_leaves_them_alone()
    {
        var t = Types.New();
        // Allocated in an order other than their addresses' (freed, then taken again from the free list, last freed
        // first), so that the order a scan finds them in is not the birth order their findings are kept in.
        var leaked = new List<nint>();
        for (int i = 0; i < 30; i++)
            leaked.Add((nint)Heap.Malloc(64, t, MallocFlags.Zero));
        foreach (nint p in leaked.OrderBy(p => p))
            Heap.Free((void*)p, t);
        leaked.Clear();
        for (int i = 0; i < 30; i++)
            leaked.Add((nint)Heap.Malloc(64, t, MallocFlags.Zero));
        Assert.NotEqual(leaked.OrderBy(p => p), leaked);
        var all = leaked.Select(p => (nuint)p).ToHashSet();
        try
        {
            _ = Leaks.ScanTwice();           // reports them (new)
            LeakScanResult third = Kmemleak.Scan(); // the same objects, no longer new: a list of its own
            long unchanged = LeakScanner.FindingsUnchanged;
            LeakScanResult fourth = Kmemleak.Scan();
            Assert.Equal(unchanged + 1, LeakScanner.FindingsUnchanged);
            Assert.Equal(all, fourth.Of(t).Select(l => l.Address).ToHashSet());
            Assert.All(fourth.Of(t), l => Assert.False(l.IsNew));

            // A change: ten of them freed, and the first of the rest made to point at the second. The one written to is
            // gray for a scan (its contents changed), so it and the one it points at are not reported by the next.
            for (int i = 0; i < 10; i++)
                Heap.Free((void*)leaked[i], t);
            *(nint*)leaked[10] = leaked[11];
            LeakScanResult fifth = Kmemleak.Scan();
            Assert.Equal(unchanged + 1, LeakScanner.FindingsUnchanged);
            Assert.Equal(leaked.Skip(12).Select(p => (nuint)p).ToHashSet(), fifth.Of(t).Select(l => l.Address).ToHashSet());
            Assert.Equal(30, third.Of(t).Count);
            Assert.Equal(30, fourth.Of(t).Count); // the results held keep what their scans found
            Assert.Equal(30, fourth.Of(t).Count(l => l.Direct));
        }
        finally
        {
            foreach (nint p in leaked.Skip(10))
                Heap.Free((void*)p, t);
            Kmemleak.Write("clear");
        }
    }

    [Fact]
    public void Findings_kept_from_earlier_scans_still_sort_in_allocation_order_once_the_scan_history_is_thinned()
    {
        var t = Types.New();
        using var root = new RootTable(1024);
        for (int i = 0; i < 70; i++)
            Kmemleak.Scan(); // the remembered scans (64) are full: from now on each scan thins them
        nint first = (nint)Heap.Malloc(64, t, MallocFlags.Zero);
        for (int i = 0; i < 3; i++)
            Kmemleak.Scan();
        // A second block, allocated later and at a higher address (so that address order agrees with allocation
        // order and a wrong sort shows), held until `first` has been kept through many scans. The blocks the heap hands
        // out below `first` meanwhile (as many as earlier tests left free there) are kept out of the reports by NotLeak.
        var held = new List<nint>();
        nint second = (nint)Heap.Malloc(64, t, MallocFlags.Zero);
        while (second < first)
        {
            Kmemleak.NotLeak((void*)second);
            held.Add(second);
            second = (nint)Heap.Malloc(64, t, MallocFlags.Zero);
        }
        root[1023] = second;
        try
        {
            for (int i = 0; i < 30; i++)
                Kmemleak.Scan(); // `first` reported, then kept in unchanged findings while the history shifts
            root[1023] = 0;
            Kmemleak.Scan();
            LeakScanResult r = Kmemleak.Scan();
            Assert.Equal(new[] { (nuint)first, (nuint)second }, r.Of(t).Select(l => l.Address));
        }
        finally
        {
            foreach (nint p in held.Append(first).Append(second))
                Heap.Free((void*)p, t);
            Kmemleak.Write("clear");
        }
    }
}

// DiagnosticTests.cs — DIAGNOSTIC mode: every check triggered by a constructed misuse, its exact message (the seed's
// text), the diagnostics event that carries it, and a heap that keeps working afterwards; quarantine, redzones, the
// allocation log, guard pages in process, switching at run time, and a clean multi-threaded run that prints nothing.
using Kmem.Checks;
using Kmem.Pages;
using Kmem.Slabs;
using Xunit;

namespace Kmem.Tests;

[Collection(GlobalStateCollection.Name)]
public sealed unsafe class DiagnosticTests : IDisposable
{
    private readonly List<(KmemMessageKind Kind, string Text)> _messages = new();
    private readonly MallocType _type;

    public DiagnosticTests()
    {
        KmemDiagnostics.Message += OnMessage;
        _type = Types.New();
        _type.Diagnostic = true;
    }

    public void Dispose()
    {
        KmemDiagnostics.Message -= OnMessage;
        _type.Diagnostic = false;
        KmemOptions.Diagnostic = false;
        KmemOptions.DiagnosticPoison = PoisonExtent.FirstWords;
        KmemOptions.DiagnosticRedzones = true;
        KmemOptions.QuarantineBlocks = 1024;
        KmemOptions.MallocLogEntries = 100_000;
        KmemOptions.ClearGuardPages();
        Heap.BeforeOwnerRelease = null;
    }

    private void OnMessage(KmemMessageKind kind, string text)
    {
        lock (_messages)
            _messages.Add((kind, text));
    }

    private List<string> Warnings()
    {
        lock (_messages)
            return _messages.Where(m => m.Kind == KmemMessageKind.Warning).Select(m => m.Text).ToList();
    }

    private static string Addr(void* p) => "0x" + ((nuint)p).ToString("x");

    private static string FirstLine(string s) => s.Split('\n')[0];

    // Frees blocks of another class until the quarantine has pushed out everything older.
    private void FlushQuarantine()
    {
        for (int i = 0; i < KmemOptions.QuarantineBlocks; i++)
            Heap.Free(Heap.Malloc(16, _type), _type);
    }

    [Fact]
    public void A_write_after_free_is_reported_when_the_block_leaves_the_quarantine_and_the_block_is_never_handed_out()
    {
        KmemOptions.QuarantineBlocks = 8;
        byte* p = (byte*)Heap.Malloc(64, _type);   // redzoned: a 96-byte block, p = block + 16
        byte* block = p - Redzones.Front;
        Heap.Free(p, _type);
        p[0] = 1;                                  // word 4 of the block (the default poison covers 32 bytes)
        FlushQuarantine();
        string m = Assert.Single(Warnings(), w => w.StartsWith("Data modified", StringComparison.Ordinal));
        Assert.Equal($"Data modified on freelist: word 4 of object {Addr(block)} size 96 previous type {_type.ShortDesc} (0xdeadbe01 != 0xdeadbeef)", FirstLine(m));
        Assert.Contains($"last allocated at {nameof(A_write_after_free_is_reported_when_the_block_leaves_the_quarantine_and_the_block_is_never_handed_out)}", m);
        // MALLOCLOG printed the block's history with it.
        Assert.Contains(Warnings(), w => w.StartsWith("MALLOCLOG for " + Addr(block), StringComparison.Ordinal) && w.Contains($"free {Addr(p)} size 64 type {_type.ShortDesc}"));
        var live = new List<nint>();
        for (int i = 0; i < 2000; i++)
            live.Add((nint)Heap.Malloc(64, _type));
        Assert.DoesNotContain((nint)p, live);
        foreach (nint q in live)
            Heap.Free((void*)q, _type);
        Assert.Equal(0, _type.GetStats().MemUse);
    }

    [Fact]
    public void Full_poisoning_catches_a_write_at_the_end_of_a_freed_block()
    {
        KmemOptions.QuarantineBlocks = 4;
        byte* p = (byte*)Heap.Malloc(64, _type);
        Heap.Free(p, _type);
        p[63] = 0; // word (16 + 60) / 4 = 19 of the block: past the default 32 bytes
        FlushQuarantine();
        Assert.Empty(Warnings());
        KmemOptions.DiagnosticPoison = PoisonExtent.Full;
        p = (byte*)Heap.Malloc(64, _type);
        Heap.Free(p, _type);
        p[63] = 0;
        FlushQuarantine();
        string m = Assert.Single(Warnings(), w => w.StartsWith("Data modified", StringComparison.Ordinal));
        Assert.Equal($"Data modified on freelist: word 19 of object {Addr(p - 16)} size 96 previous type {_type.ShortDesc} (0xadbeef != 0xdeadbeef)", FirstLine(m));
    }

    [Fact]
    public void The_quarantine_and_the_allocation_log_hold_no_raw_address_of_the_blocks_they_describe()
    {
        byte* p = (byte*)Heap.Malloc(64, _type);
        byte* q = (byte*)Heap.Malloc(64, _type);
        Heap.Free(p, _type);                      // p's block waits in the quarantine; both are in the log
        Assert.True(Quarantine.Count >= 1);
        foreach (nuint word in new[] { (nuint)p, (nuint)(p - Redzones.Front), (nuint)q, (nuint)(q - Redzones.Front) })
        {
            Assert.False(Quarantine.HoldsWord(word), $"quarantine holds 0x{word:x}");
            Assert.False(MallocLog.HoldsWord(word), $"log holds 0x{word:x}");
        }
        Assert.True(MallocLog.HoldsWord(~(nuint)p), "the log keeps the address complemented"); // the check can fail
        Heap.Free(q, _type);
    }

    [Fact]
    public void A_freed_block_waits_in_the_quarantine_for_as_many_frees_as_it_holds()
    {
        KmemOptions.QuarantineBlocks = 64;
        void* p = Heap.Malloc(200, _type);
        Heap.Free(p, _type);
        int before = Quarantine.Count;
        Assert.True(before >= 1 && before <= 64);
        for (int i = 0; i < 40; i++)
        {
            void* q = Heap.Malloc(200, _type);
            Assert.True(q != p, "a quarantined block was handed out");
            Heap.Free(q, _type);
        }
        KmemOptions.QuarantineBlocks = 1; // shrinking releases (and checks) the oldest at once
        Assert.Equal(1, Quarantine.Count);
        Assert.Empty(Warnings());
    }

    [Fact]
    public void A_double_free_prints_multiply_freed_item_with_the_log_and_panics_duplicated_free()
    {
        void* p = Heap.Malloc(64, _type);
        Heap.Free(p, _type);
        PanicAssert.Panics("free: duplicated free", () => Heap.Free(p, _type));
        List<string> w = Warnings();
        Assert.Equal($"multiply freed item {Addr(p)}\n  size 96, type {_type.ShortDesc}, last allocated at {nameof(A_double_free_prints_multiply_freed_item_with_the_log_and_panics_duplicated_free)} at ", w[0][..w[0].LastIndexOf(" at ", StringComparison.Ordinal)] + " at ");
        Assert.StartsWith($"MALLOCLOG for {Addr(p)}:", w[1]);
        Assert.Contains($"malloc {Addr(p)} size 64 type {_type.ShortDesc} at {nameof(A_double_free_prints_multiply_freed_item_with_the_log_and_panics_duplicated_free)}", w[1]);
        Assert.Contains($"free {Addr(p)} size 64 type {_type.ShortDesc}", w[1]);
        void* q = Heap.Malloc(64, _type); // the heap still works
        Heap.Free(q, _type);
        Assert.Equal(0, _type.GetStats().MemUse);
    }

    [Fact]
    public void An_interior_free_panics_unaligned_addr_and_the_block_stays_allocated()
    {
        byte* p = (byte*)Heap.Malloc(64, _type);
        PanicAssert.Panics($"free: unaligned addr {Addr(p + 8)}, size 96, type {_type.ShortDesc}, mask 95", () => Heap.Free(p + 8, _type));
        PanicAssert.Panics($"free: unaligned addr {Addr(p - 16)}, size 96, type {_type.ShortDesc}, mask 95", () => Heap.Free(p - 16, _type));
        PanicAssert.Panics($"realloc: unaligned addr {Addr(p + 8)}, size 96, type {_type.ShortDesc}, mask 95", () => Heap.Realloc(p + 8, 200, _type));
        Assert.Equal(96, _type.GetStats().MemUse);
        Heap.Free(p, _type);
        Assert.Equal(0, _type.GetStats().MemUse);
    }

    [Fact]
    public void Overflow_and_underflow_by_one_byte_are_reported_at_free_with_the_allocation_site()
    {
        byte* p = (byte*)Heap.Malloc(50, _type);
        p[-1] = 0;
        Heap.Free(p, _type);
        byte* q = (byte*)Heap.Malloc(50, _type);
        q[50] = 0;
        Heap.Free(q, _type);
        List<string> w = Warnings().Where(m => m.StartsWith("REDZONE", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, w.Count);
        Assert.Equal($"REDZONE: Buffer underflow detected. 1 byte corrupted before {Addr(p)} (50 bytes allocated).", FirstLine(w[0]));
        Assert.Equal($"REDZONE: Buffer overflow detected. 1 byte corrupted after {Addr(q + 50)} (50 bytes allocated).", FirstLine(w[1]));
        foreach (string m in w)
            Assert.Contains($"type {_type.ShortDesc}, allocated at {nameof(Overflow_and_underflow_by_one_byte_are_reported_at_free_with_the_allocation_site)} at ", m);
        Assert.Equal(0, _type.GetStats().MemUse); // the blocks were freed all the same
    }

    [Fact]
    public void A_long_overrun_that_reaches_the_size_copy_counts_every_changed_byte()
    {
        byte* p = (byte*)Heap.Malloc(40, _type); // block 80: user 40, 16 pattern bytes, 8-byte size copy
        new Span<byte>(p + 40, 24).Fill(0xEE);
        Heap.Free(p, _type);
        Assert.Equal($"REDZONE: Buffer overflow detected. 24 bytes corrupted after {Addr(p + 40)} (40 bytes allocated).",
            FirstLine(Assert.Single(Warnings(), m => m.StartsWith("REDZONE", StringComparison.Ordinal))));
    }

    [Fact]
    public void A_free_list_link_out_of_the_arena_is_reported_as_invalid_addr_and_the_list_is_cut()
    {
        KmemOptions.DiagnosticRedzones = false;
        _type.Diagnostic = false;
        const int size = 11000;
        void* x = Heap.Malloc(size, _type);
        Heap.Free(x, _type);                          // x heads this thread's list
        nuint bad = KmemMap.Size + 0x1001;           // a link past kmem_map's end
        *(nuint*)x = bad;
        _type.Diagnostic = true;
        void* got = Heap.Malloc(size, _type);
        Assert.True(got == x, "the block holding the bad link is still handed out");
        string m = Assert.Single(Warnings(), w => w.StartsWith("Data modified", StringComparison.Ordinal));
        Assert.Equal($"Data modified on freelist: word 0 of object {Addr(x)} size {Heap.Roundup(size)} previous type free (invalid addr {Addr(KmemMap.Base + KmemMap.Size + 0x1000)})", m);
        void* next = Heap.Malloc(size, _type); // the cut list is refilled
        Assert.True(next != null && next != x);
        Heap.Free(next, _type);
        Heap.Free(got, _type);
    }

    // Without DIAGNOSTIC or redzones: a freed 64-byte block, a live block of `size`, and x, freed last so that it heads
    // this thread's list of its size, with its link changed to name the 64-byte block.
    private void ListHeadedByALinkToAnotherSize(nuint size, out void* other, out void* live, out void* x)
    {
        KmemOptions.DiagnosticRedzones = false;
        _type.Diagnostic = false;
        other = Heap.Malloc(64, _type);
        live = Heap.Malloc(size, _type);
        x = Heap.Malloc(size, _type);
        Heap.Free(other, _type);
        Heap.Free(x, _type);
        *(nuint*)x = BlockLink.Encode((byte*)other);
    }

    [Fact]
    public void A_free_list_link_to_another_size_panics_wrong_bucket_and_to_a_live_block_lost_data()
    {
        const int size = 9000;
        ListHeadedByALinkToAnotherSize(size, out _, out void* live, out void* x);
        _type.Diagnostic = true;
        long inUse = _type.GetStats().MemUse;
        Assert.StartsWith("malloc: wrong bucket", PanicAssert.PanicMessage(() => Heap.Malloc(size, _type)));
        Assert.Equal(inUse, _type.GetStats().MemUse);    // nothing charged
        Assert.True(Heap.Malloc(size, _type) == x);       // the list was cut behind x, x is intact

        Heap.Free(x, _type);                              // DIAGNOSTIC: into the quarantine, not the list
        _type.Diagnostic = false;
        void* y = Heap.Malloc(size, _type);
        Heap.Free(y, _type);
        *(nuint*)y = BlockLink.Encode((byte*)live);
        _type.Diagnostic = true;
        Assert.StartsWith("malloc: lost data", PanicAssert.PanicMessage(() => Heap.Malloc(size, _type)));
        Assert.True(Heap.Malloc(size, _type) == y);
        Heap.Free(y, _type);
        Heap.Free(live, _type);
        Assert.Equal(0, _type.GetStats().MemUse);
    }

    [Fact]
    public void Without_DIAGNOSTIC_malloc_and_a_batch_still_refuse_a_link_to_another_size_or_a_live_block_and_charge_nothing()
    {
        // The always-on checks, met by the allocation fast paths (Heap.Malloc's and MallocBatch's): a block is taken only
        // after its class and owner are checked; otherwise the slow path panics.
        const int size = 9000;
        ListHeadedByALinkToAnotherSize(size, out void* other, out void* live, out void* x);
        Assert.True(Heap.Malloc(size, _type) == x);       // x itself is sound
        MallocTypeStats before = _type.GetStats();
        Assert.StartsWith("malloc: wrong bucket", PanicAssert.PanicMessage(() => Heap.Malloc(size, _type)));
        Assert.Equal((before.MemUse, before.Requests), (_type.GetStats().MemUse, _type.GetStats().Requests)); // nothing charged or counted
        void* y = Heap.Malloc(size, _type);               // the cut list is refilled
        Assert.True(y != null && y != x && y != other);

        Heap.Free(y, _type);
        Heap.Free(x, _type);
        *(nuint*)x = BlockLink.Encode((byte*)live);      // now a link to a live block of the same size
        Assert.True(Heap.Batch(_type).Malloc(size) == x);
        before = _type.GetStats();
        Assert.StartsWith("malloc: lost data", PanicAssert.PanicMessage(() => Heap.Batch(_type).Malloc(size)));
        Assert.Equal((before.MemUse, before.Requests), (_type.GetStats().MemUse, _type.GetStats().Requests));
        Heap.Free(x, _type);
        Heap.Free(live, _type);
        Assert.Equal(0, _type.GetStats().MemUse);
    }

    [Fact]
    public void A_corrupted_type_magic_panics_bogus_type_and_so_do_detached_and_never_attached_types()
    {
        _type.Magic = 0x1234;
        try
        {
            PanicAssert.Panics("malloc - bogus type", () => Heap.Malloc(64, _type));
        }
        finally
        {
            _type.Magic = MallocType.MagicValue;
        }
        _type.Magic = 0x1234;
        byte* p = (byte*)Heap.Malloc(64, Types.New()); // another type: the fast path does not read the magic
        try
        {
            void* q = null;
            _type.Magic = MallocType.MagicValue;
            q = Heap.Malloc(64, _type);
            _type.Magic = 0x1234;
            PanicAssert.Panics($"free: bogus type {_type.ShortDesc} (bad magic)", () => Heap.Free(q, _type));
            _type.Magic = MallocType.MagicValue;
            Heap.Free(q, _type); // the rejected free changed nothing
        }
        finally
        {
            _type.Magic = MallocType.MagicValue;
        }
        GC.KeepAlive((nint)p);
        var never = Types.New(attach: false);
        PanicAssert.Panics("malloc - bogus type", () => Heap.Malloc(64, never));
        var detached = Types.New();
        detached.Detach();
        PanicAssert.Panics("malloc - bogus type", () => Heap.Malloc(64, detached));
        Heap.Free(Heap.Malloc(64, _type), _type);
    }

    [Fact]
    public void A_free_that_loses_a_race_with_another_free_of_the_same_block_panics_multiple_frees()
    {
        byte* p = (byte*)Heap.Malloc(64, _type);
        long memUse = _type.GetStats().MemUse;
        // The racing free wins between this free's validation and its release of the block.
        nuint off = (nuint)(p - 16 - KmemMap.Base);
        uint slot = SizeClasses.SlotOf(SizeClasses.ClassOf(96), off & KmemMap.UnitMask);
        ref ushort owner = ref SlabMeta.Owner(SlabMeta.Of((uint)(off >> KmemMap.UnitShift)), slot);
        ushort saved = owner;
        Heap.BeforeOwnerRelease = _ => SlabMeta.Owner(SlabMeta.Of((uint)(off >> KmemMap.UnitShift)), slot) = 0;
        PanicAssert.Panics("free: multiple frees", () => Heap.Free(p, _type));
        Assert.Equal(memUse, _type.GetStats().MemUse); // the loser changed nothing
        Heap.BeforeOwnerRelease = null;
        // The simulated winner only took the owner entry: give it back and free the block, so the heap is whole again.
        owner = saved;
        Heap.Free(p, _type);
        Heap.Free(Heap.Malloc(64, _type), _type);
        TestSupport.AssertHeapHealthy();
    }

    [Fact]
    public void Blocks_keep_their_layout_when_the_mode_is_switched_while_they_live()
    {
        _type.Diagnostic = false;
        byte* plain = (byte*)Heap.Malloc(64, _type);
        _type.Diagnostic = true;
        byte* zoned = (byte*)Heap.Malloc(64, _type, MallocFlags.Zero);
        Assert.True(new ReadOnlySpan<byte>(zoned, 64).IndexOfAnyExcept((byte)0) < 0, "M_ZERO clears the user's bytes");
        Assert.Equal((nuint)64, (nuint)(Heap.Realloc(zoned, 64, _type) == zoned ? 64 : 0)); // fits: same block
        int waiting = Quarantine.Count;
        Heap.Free(plain, _type);            // allocated plain, freed under DIAGNOSTIC: poisoned and quarantined
        Assert.Equal(waiting + 1, Quarantine.Count);
        Assert.Equal(Poison.Word, *(uint*)(plain + 8));
        _type.Diagnostic = false;
        zoned[64] = 7;                      // overflow, found even though the mode is off now
        Heap.Free(zoned, _type);
        Assert.Single(Warnings(), m => m.StartsWith("REDZONE: Buffer overflow detected. 1 byte", StringComparison.Ordinal));
        Assert.Equal(0, Quarantine.Count); // switching off released the quarantine
        Assert.Equal(0, _type.GetStats().MemUse);
    }

    [Fact]
    public void Realloc_of_a_redzoned_block_moves_past_the_requested_size_and_keeps_the_contents()
    {
        byte* p = (byte*)Heap.Malloc(40, _type);
        for (int i = 0; i < 40; i++)
            p[i] = (byte)i;
        Assert.True(Heap.Realloc(p, 40, _type) == p);
        byte* q = (byte*)Heap.Realloc(p, 41, _type); // the block has room, but the redzone starts at byte 40: it moves
        Assert.True(q != p);
        for (int i = 0; i < 40; i++)
            Assert.Equal((byte)i, q[i]);
        Heap.Free(q, _type);
        Assert.Empty(Warnings());
    }

    [Fact]
    public void Guard_page_blocks_end_at_a_page_end_and_are_checked_on_free()
    {
        KmemOptions.SetGuardPages(_type, 1, 8192);
        byte* p = (byte*)Heap.Malloc(100, _type);
        Assert.False(KmemMap.Contains(p));
        Assert.Equal((nuint)0, ((nuint)p + 112) % (nuint)Environment.SystemPageSize); // 100 rounded to 16
        new Span<byte>(p, 100).Fill(1);
        Assert.True(_type.GetStats().MemUse > 0);
        byte* q = (byte*)Heap.Realloc(p, 6000, _type); // moves to another guarded block of two pages
        Assert.Equal(1, q[99]);
        PanicAssert.Panics("free: duplicated free", () => Heap.Free(p, _type));
        Assert.Contains($"multiply freed item {Addr(p)}\n  size 100, type {_type.ShortDesc}, last allocated at {nameof(Guard_page_blocks_end_at_a_page_end_and_are_checked_on_free)} at ", string.Join("|", Warnings()));
        PanicAssert.Panics($"free: unaligned addr {Addr(q + 16)}, size 6000, type {_type.ShortDesc}, mask 15", () => Heap.Free(q + 16, _type));
        var other = Types.New();
        Assert.StartsWith($"free: addr {Addr(q)} belongs to type {_type.ShortDesc}", PanicAssert.PanicMessage(() => Heap.Free(q, other)));
        Heap.Free(q, _type);
        Assert.Equal(0, _type.GetStats().MemUse);
        void* big = Heap.Malloc(20000, _type); // outside the range: the normal allocator
        Assert.True(KmemMap.Contains(big));
        Heap.Free(big, _type);
    }

    [Fact]
    public void A_guarded_blocks_slack_within_its_pages_is_checked_at_free_like_a_redzone()
    {
        KmemOptions.SetGuardPages(_type, 1, 8192);
        byte* p = (byte*)Heap.Malloc(100, _type); // 12 bytes of slack up to the page end, the rest of the page before
        p[100] = 1;                                // overflow by one: no fault (the page is the block's)
        p[-1] = 1;                                 // underflow by one: no fault either
        Heap.Free(p, _type);
        List<string> w = Warnings().Where(m => m.StartsWith("REDZONE", StringComparison.Ordinal)).ToList();
        Assert.Equal($"REDZONE: Buffer underflow detected. 1 byte corrupted before {Addr(p)} (100 bytes allocated).", FirstLine(w[0]));
        Assert.Equal($"REDZONE: Buffer overflow detected. 1 byte corrupted after {Addr(p + 100)} (100 bytes allocated).", FirstLine(w[1]));
        Assert.EndsWith("(guard pages)", w[1]);
        Assert.Equal(0, _type.GetStats().MemUse);
    }

    [Fact]
    public void Option_setters_refuse_bad_values_and_change_nothing()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => KmemOptions.QuarantineBlocks = 0);
        Assert.Throws<ArgumentOutOfRangeException>(() => KmemOptions.MallocLogEntries = -1);
        Assert.Throws<ArgumentOutOfRangeException>(() => KmemOptions.DiagnosticPoison = (PoisonExtent)7);
        Assert.Throws<ArgumentOutOfRangeException>(() => KmemOptions.SetGuardPages(null, 0, 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => KmemOptions.SetGuardPages(null, 10, 5));
        Assert.Throws<ArgumentOutOfRangeException>(() => KmemOptions.SetGuardPages(null, 1, KmemOptions.GuardPageMaxSize + 1));
        Assert.Throws<InvalidOperationException>(() => KmemOptions.MinBucketShift = 5); // Kmem has started
        Assert.Equal(1024, KmemOptions.QuarantineBlocks);
        Assert.Null(CheckSwitch.Guard);
        Assert.Equal(new CheckSwitch.GuardSelection("cache", 64, 128), CheckSwitch.ParseGuard("cache:64-128"));
        Assert.Equal(new CheckSwitch.GuardSelection(null, 1, GuardPages.MaxBlockSize), CheckSwitch.ParseGuard("*"));
        Assert.Null(CheckSwitch.ParseGuard("x:9-3"));
    }

    [Fact]
    public void A_clean_multithreaded_run_with_every_check_on_prints_nothing()
    {
        KmemOptions.Diagnostic = true;
        KmemOptions.DiagnosticPoison = PoisonExtent.Full;
        KmemOptions.QuarantineBlocks = 256;
        KmemOptions.SetGuardPages(_type, 3000, 3100);
        var threads = new Thread[4];
        var failures = new List<string>();
        for (int t = 0; t < threads.Length; t++)
        {
            int seed = t;
            threads[t] = new Thread(() =>
            {
                try
                {
                    var rng = new Random(seed);
                    var live = new List<(nint P, int Size, byte Fill)>();
                    for (int i = 0; i < 20_000; i++)
                    {
                        if (live.Count > 0 && (rng.Next(3) == 0 || live.Count > 200))
                        {
                            int k = rng.Next(live.Count);
                            (nint p, int size, byte fill) = live[k];
                            if (new ReadOnlySpan<byte>((void*)p, size).IndexOfAnyExcept(fill) >= 0)
                                throw new InvalidOperationException("contents changed");
                            live.RemoveAt(k);
                            if (rng.Next(4) == 0)
                            {
                                int n = rng.Next(1, 5000);
                                byte* q = (byte*)Heap.Realloc((void*)p, (nuint)n, _type);
                                new Span<byte>(q, n).Fill(fill);
                                live.Add(((nint)q, n, fill));
                            }
                            else
                            {
                                Heap.Free((void*)p, _type);
                            }
                        }
                        else
                        {
                            int n = rng.Next(8) == 0 ? rng.Next(3000, 3100) : rng.Next(1, 600);
                            byte fill = (byte)rng.Next(256);
                            byte* p = (byte*)Heap.Malloc((nuint)n, _type);
                            new Span<byte>(p, n).Fill(fill);
                            live.Add(((nint)p, n, fill));
                        }
                    }
                    foreach ((nint p, _, _) in live)
                        Heap.Free((void*)p, _type);
                }
                catch (Exception e)
                {
                    lock (failures)
                        failures.Add(e.ToString());
                }
            });
            threads[t].Start();
        }
        foreach (Thread th in threads)
            th.Join();
        Assert.Empty(failures);
        KmemOptions.Diagnostic = false;
        _type.Diagnostic = false; // releases (and checks) the quarantine
        Assert.Empty(_messages);
        Assert.Equal(0, _type.GetStats().MemUse);
        Assert.Equal(0, GuardPages.LiveCount);
    }
}

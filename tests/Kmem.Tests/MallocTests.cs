// MallocTests.cs — malloc/free, the flags, per-type statistics and allocation sites.
using Kmem.Pages;
using Kmem.Slabs;
using Xunit;

namespace Kmem.Tests;

public unsafe class MallocTests
{
    [Fact]
    public void Blocks_hold_what_is_written_and_statistics_follow_in_rounded_bytes()
    {
        var type = Types.New();
        var blocks = new List<(nint P, int Size)>();
        foreach (int size in new[] { 1, 16, 17, 100, 1000, 5000, 32768, 40000, 1 << 20 })
        {
            byte* p = (byte*)Heap.Malloc((nuint)size, type);
            Assert.True(p != null);
            new Span<byte>(p, size).Fill((byte)size);
            blocks.Add(((nint)p, size));
        }
        long rounded = blocks.Sum(b => (long)Heap.Roundup((nuint)b.Size));
        MallocTypeStats s = type.GetStats();
        Assert.Equal(type.ShortDesc, s.Type);
        Assert.Equal(blocks.Count, s.InUse);
        Assert.Equal(blocks.Count, s.Requests);
        Assert.Equal(rounded, s.MemUse);
        Assert.Equal(rounded, s.HighUse);
        Assert.Equal(new ulong[] { 16, 32, 112, 1024, 5120, 32768, 65536, 1048576 }, s.SizesUsed);

        foreach ((nint p, int size) in blocks)
        {
            Assert.True(new Span<byte>((void*)p, size).IndexOfAnyExcept((byte)size) < 0);
            Heap.Free((void*)p, type);
        }
        s = type.GetStats();
        Assert.Equal(0, s.InUse);
        Assert.Equal(0, s.MemUse);
        Assert.Equal(rounded, s.HighUse);
        Assert.Equal(blocks.Count, s.Requests);
    }

    [Fact]
    public void Zero_clears_the_requested_bytes_of_a_reused_block()
    {
        var type = Types.New();
        byte* a = (byte*)Heap.Malloc(200, type);
        new Span<byte>(a, 200).Fill(0xAB);
        Heap.Free(a, type);
        byte* b = (byte*)Heap.Malloc(200, type, MallocFlags.Zero);
        Assert.True(b == a, "the thread cache hands back the block just freed");
        Assert.True(new Span<byte>(b, 200).IndexOfAnyExcept((byte)0) < 0);
        Heap.Free(b, type);

        byte* big = (byte*)Heap.Malloc(300_000, type, MallocFlags.Zero);
        Assert.True(new Span<byte>(big, 300_000).IndexOfAnyExcept((byte)0) < 0);
        Heap.Free(big, type);
    }

    [Fact]
    public void Large_blocks_return_their_pages_to_the_OS_on_free()
    {
        var type = Types.New();
        const int size = 8 << 20;
        byte* p = (byte*)Heap.Malloc(size, type);
        new Span<byte>(p, size).Fill(1);
        long committed = KmemMap.CommittedBytes;
        Heap.Free(p, type);
        Assert.True(KmemMap.CommittedBytes <= committed - size + (1 << 20),
            $"committed {committed} -> {KmemMap.CommittedBytes}: the block's pages were not given back");
        byte* again = (byte*)Heap.Malloc(size, type);
        Assert.True(new Span<byte>(again, size).IndexOfAnyExcept((byte)0) < 0, "pages fresh from the OS are zero");
        Heap.Free(again, type);
    }

    [Fact]
    public void The_allocation_site_is_recorded_for_every_block()
    {
        var type = Types.New();
        byte* p = (byte*)Heap.Malloc(48, type);
        nuint off = (nuint)(p - KmemMap.Base);
        byte* meta = SlabMeta.Of((uint)(off >> KmemMap.UnitShift));
        uint slot = SizeClasses.SlotOf(SizeClasses.ClassOf(48), off & KmemMap.UnitMask);
        string site = Diagnostics.AllocContexts.Describe(SlabMeta.Site(meta, slot));
        Assert.StartsWith(nameof(The_allocation_site_is_recorded_for_every_block) + " at ", site);
        Assert.Contains("MallocTests.cs:", site);
        Assert.Equal((ushort)type.Index, SlabMeta.Owner(meta, slot));
        Heap.Free(p, type);
    }

    [Fact]
    public void Unknown_flags_are_rejected_and_nothing_is_allocated()
    {
        var type = Types.New();
        Assert.Throws<ArgumentOutOfRangeException>(() => { Heap.Malloc(16, type, (MallocFlags)64); });
        Assert.Equal(0, type.GetStats().Requests);
    }

    [Fact]
    public void The_generic_types_carry_the_manual_descriptions()
    {
        Assert.Equal("devbuf", MallocType.DevBuf.ShortDesc);
        Assert.Equal("Device driver memory", MallocType.DevBuf.LongDesc);
        Assert.Equal("bus_dma(9) structures", MallocType.DmaMap.LongDesc);
        Assert.Equal("Should be on free list", MallocType.Free.LongDesc);
        Assert.Equal("Protocol control block", MallocType.Pcb.LongDesc);
        Assert.Equal("Softinterrupt structures", MallocType.SoftIntr.LongDesc);
        Assert.Equal("Misc temporary data buffers", MallocType.Temp.LongDesc);
        foreach (var t in new[] { MallocType.DevBuf, MallocType.DmaMap, MallocType.Free, MallocType.Pcb, MallocType.SoftIntr, MallocType.Temp })
            Assert.True(t.IsAttached);
    }

    [Fact]
    public void The_default_limit_is_60_percent_of_the_machines_memory()
    {
        ulong memory = (ulong)GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        var type = Types.New();
        Assert.Equal(memory / 10 * 6, type.Limit);
        Assert.Equal(4096ul, Types.New(limit: 4096).Limit);
    }

    [Fact]
    public void Type_definitions_are_validated()
    {
        Assert.Throws<ArgumentNullException>(() => new MallocType(null!));
        Assert.Throws<ArgumentException>(() => new MallocType(""));
        Assert.Throws<ArgumentException>(() => new MallocType("bad\nname"));
        Assert.Throws<ArgumentException>(() => new MallocType(new string('x', 65)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new MallocType("huge", limit: ulong.MaxValue));
    }

    [Fact]
    public void The_map_size_cannot_change_once_the_heap_runs()
    {
        Heap.Free(Heap.Malloc(16, MallocType.Temp), MallocType.Temp);
        Assert.Throws<InvalidOperationException>(() => KmemOptions.KmemMapSize = 1UL << 30);
    }
}

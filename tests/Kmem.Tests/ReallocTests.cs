// ReallocTests.cs — realloc(9) in all its cases.
using Xunit;

namespace Kmem.Tests;

public unsafe class ReallocTests
{
    [Fact]
    public void Null_address_behaves_as_malloc()
    {
        var type = Types.New();
        void* p = Heap.Realloc(null, 40, type);
        Assert.True(p != null);
        Assert.Equal(1, type.GetStats().InUse);
        Heap.Free(p, type);
    }

    [Fact]
    public void Size_zero_behaves_as_free_and_returns_null()
    {
        var type = Types.New();
        void* p = Heap.Malloc(40, type);
        Assert.True(Heap.Realloc(p, 0, type) == null);
        Assert.Equal(0, type.GetStats().InUse);
    }

    [Fact]
    public void A_block_that_already_fits_is_returned_unchanged()
    {
        var type = Types.New();
        byte* p = (byte*)Heap.Malloc(100, type); // 112-byte class
        p[0] = 7;
        Assert.True(Heap.Realloc(p, 112, type) == p);
        Assert.True(Heap.Realloc(p, 10, type) == p);
        Assert.Equal(7, p[0]);
        Assert.Equal(1, type.GetStats().InUse);
        Heap.Free(p, type);
    }

    [Theory]
    [InlineData(20, 1000)]
    [InlineData(1000, 100_000)]
    [InlineData(100_000, 3_000_000)]
    public void Growing_moves_the_contents_and_frees_the_old_block(int from, int to)
    {
        var type = Types.New();
        byte* p = (byte*)Heap.Malloc((nuint)from, type);
        for (int i = 0; i < from; i++)
            p[i] = (byte)(i * 31);
        byte* q = (byte*)Heap.Realloc(p, (nuint)to, type);
        Assert.True(q != p);
        for (int i = 0; i < from; i++)
            Assert.Equal((byte)(i * 31), q[i]);
        q[to - 1] = 1;
        MallocTypeStats s = type.GetStats();
        Assert.Equal(1, s.InUse);
        Assert.Equal((long)Heap.Roundup((nuint)to), s.MemUse);
        Assert.Throws<KmemPanicException>(() => Heap.Free(p, type)); // the old block is gone
        Heap.Free(q, type);
    }

    [Fact]
    public void Zero_clears_the_grown_part()
    {
        var type = Types.New();
        byte* p = (byte*)Heap.Malloc(16, type);
        new Span<byte>(p, 16).Fill(9);
        byte* q = (byte*)Heap.Realloc(p, 4000, type, MallocFlags.Zero);
        Assert.True(new Span<byte>(q, 16).IndexOfAnyExcept((byte)9) < 0);
        Assert.True(new Span<byte>(q + 16, 4000 - 16).IndexOfAnyExcept((byte)0) < 0);
        Heap.Free(q, type);
    }

    [Fact]
    public void On_failure_null_is_returned_and_the_old_block_is_untouched()
    {
        var type = Types.New(limit: 1024);
        byte* p = (byte*)Heap.Malloc(1024, type);
        new Span<byte>(p, 1024).Fill(5);
        Assert.True(Heap.Realloc(p, 2048, type, MallocFlags.NoWait) == null);
        Assert.True(new Span<byte>(p, 1024).IndexOfAnyExcept((byte)5) < 0);
        MallocTypeStats s = type.GetStats();
        Assert.Equal(1, s.InUse);
        Assert.Equal(1024, s.MemUse);
        ulong huge = 1UL << 50;
        Assert.True(Heap.Realloc(p, (nuint)huge, type, MallocFlags.CanFail) == null);
        Heap.Free(p, type);
        Assert.Equal(0, type.GetStats().MemUse);
    }

    [Fact]
    public void Realloc_of_a_bad_address_panics_with_the_realloc_wording()
    {
        var type = Types.New();
        byte* p = (byte*)Heap.Malloc(64, type);
        PanicAssert.Panics($"realloc: unaligned addr 0x{(nuint)(p + 8):x}, size 64, type {type.ShortDesc}, mask 63",
            () => Heap.Realloc(p + 8, 200, type));
        Heap.Free(p, type);
        Assert.Equal(0, type.GetStats().InUse);
    }
}

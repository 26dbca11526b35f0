// SizeClassTests.cs — malloc_roundup, the size classes and block alignment.
using Kmem.Slabs;
using Xunit;

namespace Kmem.Tests;

public unsafe class SizeClassTests
{
    [Theory]
    [InlineData(0, 16)]
    [InlineData(1, 16)]
    [InlineData(16, 16)]
    [InlineData(17, 32)]
    [InlineData(64, 64)]
    [InlineData(65, 80)]
    [InlineData(129, 160)]
    [InlineData(1000, 1024)]
    [InlineData(1025, 1280)]
    [InlineData(32767, 32768)]
    [InlineData(32768, 32768)]
    [InlineData(32769, 36864)]
    [InlineData(40000, 40960)]
    [InlineData(1048577, 1052672)]
    public void Roundup_gives_the_class_size_or_whole_pages(long request, long expected) =>
        Assert.Equal((nuint)expected, Heap.Roundup((nuint)request));

    [Fact]
    public void Classes_run_from_16_bytes_to_32_KiB_at_most_25_percent_apart_from_80_bytes()
    {
        Assert.Equal(16u, SizeClasses.SizeOf(0));
        Assert.Equal(32768u, SizeClasses.SizeOf(SizeClasses.Count - 1));
        for (int c = 1; c < SizeClasses.Count; c++)
        {
            uint prev = SizeClasses.SizeOf(c - 1), cur = SizeClasses.SizeOf(c);
            Assert.True(cur > prev);
            Assert.Equal(0u, cur % 16);
            if (prev >= 80)
                Assert.True(cur <= prev * 1.25, $"{prev} -> {cur} is more than 25% apart");
            else
                Assert.Equal(prev + 16, cur); // below 80 bytes the 16-byte alignment is the step
        }
    }

    [Fact]
    public void Roundup_rejects_a_size_no_block_can_have() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => Heap.Roundup(nuint.MaxValue));

    [Fact]
    public void Every_class_is_aligned_and_power_of_two_classes_up_to_a_page_are_naturally_aligned()
    {
        var type = Types.New();
        for (int c = 0; c < SizeClasses.Count; c++)
        {
            uint size = SizeClasses.SizeOf(c);
            var blocks = new List<nint>();
            for (int i = 0; i < 20; i++)
            {
                nint p = (nint)Heap.Malloc(size, type);
                blocks.Add(p);
                Assert.Equal(0, p % 16);
                if (System.Numerics.BitOperations.IsPow2(size) && size <= 4096)
                    Assert.Equal(0, p % size);
                Assert.Equal((nuint)size, Heap.Roundup(size));
            }
            Assert.Equal(blocks.Count, blocks.Distinct().Count());
            foreach (nint p in blocks)
                Heap.Free((void*)p, type);
        }
        Assert.Equal(0, type.GetStats().InUse);
    }

    [Fact]
    public void Slot_arithmetic_is_exact_for_every_block_of_every_class()
    {
        for (int c = 0; c < SizeClasses.Count; c++)
        {
            uint size = SizeClasses.SizeOf(c);
            for (uint slot = 0; slot < SizeClasses.BlocksPerSlab(c); slot++)
                Assert.Equal(slot, SizeClasses.SlotOf(c, (nuint)(slot * size)));
        }
    }
}

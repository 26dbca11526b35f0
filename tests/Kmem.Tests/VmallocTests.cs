// VmallocTests.cs — vmalloc areas: sizes, descriptors, FindVmArea, guard pages (child process), bad input.
using Xunit;

namespace Kmem.Tests;

public unsafe class VmallocTests
{
    private static readonly nuint Page = (nuint)Environment.SystemPageSize;

    [Theory]
    [InlineData(1)]
    [InlineData(4096)]
    [InlineData(4097)]
    [InlineData(1_000_000)]
    [InlineData(3_000_000)]
    public void Areas_are_whole_pages_with_a_descriptor_of_type_vmarea(int size)
    {
        var type = Types.New();
        long descriptorsBefore = Heap.VmAreaType.GetStats().InUse;
        byte* p = (byte*)Heap.Vmalloc((nuint)size, type);
        Assert.Equal(0u, (nuint)p % Page);
        nuint expected = ((nuint)size + Page - 1) / Page * Page;
        new Span<byte>(p, (int)expected).Fill(0x5A); // every mapped byte is usable

        VmArea area = Heap.FindVmArea(p)!.Value;
        Assert.True(area.Addr == p);
        Assert.Equal(expected, area.Size);
        Assert.Equal((nuint)size, area.RequestedSize);
        Assert.Same(type, area.Type);
        Assert.True(*(void**)area.Descriptor == p, "the descriptor's first word is a real pointer to the area");
        Assert.Equal(descriptorsBefore + 1, Heap.VmAreaType.GetStats().InUse);

        MallocTypeStats s = type.GetStats();
        Assert.Equal(1, s.InUse);
        Assert.Equal((long)expected, s.MemUse);
        Heap.Vfree(p);
        s = type.GetStats();
        Assert.Equal(0, s.InUse);
        Assert.Equal(0, s.MemUse);
        Assert.Equal(descriptorsBefore, Heap.VmAreaType.GetStats().InUse);
        Assert.Null(Heap.FindVmArea(p));
    }

    [Fact]
    public void FindVmArea_finds_the_first_interior_and_last_byte_but_not_the_guard_pages()
    {
        var type = Types.New();
        byte* p = (byte*)Heap.Vmalloc(5 * Page, type);
        VmArea area = Heap.FindVmArea(p)!.Value;
        Assert.Equal(area, Heap.FindVmArea(p + 2 * Page + 17));
        Assert.Equal(area, Heap.FindVmArea(p + 5 * Page - 1));
        Assert.Null(Heap.FindVmArea(p - 1));
        Assert.Null(Heap.FindVmArea(p + 5 * Page));
        void* k = Heap.Malloc(64, type);
        Assert.Null(Heap.FindVmArea(k));
        Heap.Free(k, type);
        Heap.Vfree(p);
    }

    [Fact]
    public void Freed_pages_go_back_to_the_OS()
    {
        var type = Types.New();
        long before = Pages.KmemMap.CommittedBytes;
        byte* p = (byte*)Heap.Vmalloc(16 << 20, type);
        Assert.True(Pages.KmemMap.CommittedBytes >= before + (16 << 20) - (1 << 20));
        Heap.Vfree(p);
        Assert.True(Pages.KmemMap.CommittedBytes <= before + (1 << 20));
    }

    [Fact]
    public void Bad_input_is_refused_clearly()
    {
        var type = Types.New();
        Assert.Throws<ArgumentOutOfRangeException>(() => Heap.Vmalloc(0, type));
        PanicAssert.Panics("malloc - bogus type", () => Heap.Vmalloc(10, Types.New(attach: false)));
        PanicAssert.Panics("vfree: null addr", () => Heap.Vfree(null));
        byte* p = (byte*)Heap.Vmalloc(3 * Page, type);
        string hex(void* a) => "0x" + ((nuint)a).ToString("x");
        PanicAssert.Panics($"vfree: addr {hex(p + 8)} is not the start of a vmalloc area (already freed, interior, or not vmalloc'd)", () => Heap.Vfree(p + 8));
        void* k = Heap.Malloc(64, type);
        Assert.Throws<KmemPanicException>(() => Heap.Vfree(k));
        PanicAssert.Panics($"free: addr {hex(p)} is vmalloc'd memory; use Vfree", () => Heap.Free(p, type));
        Heap.Vfree(p);
        Assert.Throws<KmemPanicException>(() => Heap.Vfree(p));
        Heap.Free(k, type);
        Assert.Equal(0, type.GetStats().MemUse);
    }
}

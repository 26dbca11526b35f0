// PhysTests.cs — physical regions: stable bases, translation across Unmap/Map, the region allocator, bad input.
using Xunit;

namespace Kmem.Tests;

public unsafe class PhysTests
{
    [Fact]
    public void Bases_are_stable_and_regions_never_overlap()
    {
        using PhysRegion a = PhysRegion.Create(10_000);
        using PhysRegion b = PhysRegion.Create(1 << 20);
        Assert.Equal((nuint)12288, a.Size); // whole pages
        Assert.True(a.Base >= PhysRegion.FirstBase);
        Assert.True(a.Base + a.Size <= b.Base || b.Base + b.Size <= a.Base);
        ulong baseA = a.Base;
        a.Map();
        a.Unmap();
        a.Map();
        Assert.Equal(baseA, a.Base);
        a.Dispose();
        using PhysRegion c = PhysRegion.Create(4096);
        Assert.True(c.Base > baseA, "a released range is never handed out again");
    }

    [Fact]
    public void Translation_follows_the_region_across_Unmap_and_Map_at_another_address()
    {
        using PhysRegion r = PhysRegion.Create(64 * 1024);
        byte* v1 = (byte*)r.Map();
        ulong phys = r.Alloc(100);
        Assert.True(phys >= r.Base && phys < r.Base + r.Size);
        byte* obj = (byte*)Heap.PhysToVirt(phys);
        Assert.True(obj == v1 + (nuint)(phys - r.Base));
        Assert.Equal(phys, Heap.VirtToPhys(obj));
        Assert.Equal(phys + 99, Heap.VirtToPhys(obj + 99));
        new Span<byte>(obj, 100).Fill(0x7E);

        // Keep the old address busy so the next mapping must land elsewhere.
        r.Unmap();
        Assert.True(Heap.PhysToVirt(phys) == null, "unmapped: no virtual address");
        Assert.Equal(0ul, Heap.VirtToPhys(obj));
        using PhysRegion blocker = PhysRegion.Create(64 * 1024);
        byte* vb = (byte*)blocker.Map();
        byte* v2 = (byte*)r.Map();
        Assert.True(v2 != v1 || vb == v1, "the region may come back at another address");
        byte* again = (byte*)Heap.PhysToVirt(phys);
        Assert.True(again == v2 + (nuint)(phys - r.Base));
        Assert.True(new Span<byte>(again, 100).IndexOfAnyExcept((byte)0x7E) < 0, "contents survive remapping");
        Assert.Equal(phys, Heap.VirtToPhys(again));
    }

    [Fact]
    public void Non_physical_addresses_translate_to_nothing()
    {
        var type = Types.New();
        void* k = Heap.Malloc(64, type);
        Assert.Equal(0ul, Heap.VirtToPhys(k));
        Assert.True(Heap.PhysToVirt(0) == null);
        Assert.True(Heap.PhysToVirt(12345) == null);
        Heap.Free(k, type);
    }

    [Fact]
    public void The_region_allocator_hands_out_disjoint_ranges_and_takes_them_back()
    {
        using PhysRegion r = PhysRegion.Create(4096);
        var got = new List<ulong>();
        ulong p;
        while ((p = r.Alloc(100)) != 0)
            got.Add(p); // 112-byte steps
        Assert.Equal(4096 / 112, got.Count);
        Assert.Equal(got.Count, got.Distinct().Count());
        Assert.All(got, x => Assert.Equal(0ul, x % 16));
        Assert.Equal((nuint)(got.Count * 112), r.Allocated);
        foreach (ulong x in got)
            r.Free(x);
        Assert.Equal((nuint)0, r.Allocated);
        Assert.NotEqual(0ul, r.Alloc(4096)); // freed ranges coalesced back into one
    }

    [Fact]
    public void Bad_input_is_refused_clearly()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => PhysRegion.Create(0));
        PhysRegion r = PhysRegion.Create(4096);
        Assert.Throws<InvalidOperationException>(() => r.Unmap());
        r.Map();
        Assert.Throws<InvalidOperationException>(() => r.Map());
        Assert.Throws<ArgumentOutOfRangeException>(() => r.Alloc(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => r.Alloc(8192));
        ulong p = r.Alloc(64);
        Assert.Throws<ArgumentException>(() => r.Free(p + 16));
        Assert.Throws<ArgumentException>(() => r.Free(12));
        r.Free(p);
        Assert.Throws<ArgumentException>(() => r.Free(p));
        r.Dispose();
        r.Dispose(); // twice is fine
        Assert.Throws<ObjectDisposedException>(() => r.Map());
        Assert.Throws<ObjectDisposedException>(() => r.Alloc(16));
        Assert.True(Heap.PhysToVirt(r.Base) == null);
    }

    [Fact]
    public void Vmstat_lists_the_regions()
    {
        using PhysRegion r = PhysRegion.Create(8192);
        r.Map();
        r.Alloc(32);
        string text = Heap.FormatVmstat();
        Assert.Contains("Physical regions\n              Base        Size  Mapped   Allocated\n", text);
        Assert.Contains($"{"0x" + r.Base.ToString("x"),18}        8192     yes          32\n", text);
    }
}

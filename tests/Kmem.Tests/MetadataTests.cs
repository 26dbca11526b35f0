// MetadataTests.cs — Kmem's own metadata holds no raw address of a block: free-list links and cache heads are offsets.
using Kmem.Caches;
using Kmem.Pages;
using Kmem.Slabs;
using System.Runtime.CompilerServices;
using Xunit;

namespace Kmem.Tests;

public unsafe class MetadataTests
{
    private static bool LooksLikeABlockAddress(nuint word) => word - (nuint)KmemMap.Base < KmemMap.Size;

    [Fact]
    public void Free_lists_store_offsets_never_block_addresses()
    {
        var type = Types.New();
        var blocks = new List<nint>();
        for (int i = 0; i < 300; i++)
            blocks.Add((nint)Heap.Malloc(208, type));
        foreach (nint p in blocks)
            Heap.Free((void*)p, type);
        // Every freed block's first word is a link; none may be an address inside kmem_map.
        int links = 0;
        foreach (nint p in blocks)
        {
            nuint word = *(nuint*)p;
            Assert.False(LooksLikeABlockAddress(word), $"block 0x{p:x} holds a raw pointer 0x{word:x}");
            if (word != 0)
            {
                links++;
                Assert.True(LooksLikeABlockAddress((nuint)BlockLink.Decode(word)));
            }
        }
        Assert.True(links > 200);

        // The thread cache's bins are metadata too.
        byte* tc = ThreadCaches.Current();
        for (int c = 0; c < SizeClasses.Count; c++)
        {
            ClassBin* bin = ThreadCaches.Bin(tc, c);
            Assert.False(LooksLikeABlockAddress(bin->Head));
            Assert.False(LooksLikeABlockAddress(bin->Spare));
        }
    }

    [Fact]
    public void Side_tables_cost_at_most_16_bytes_per_block()
    {
        for (int c = 0; c < SizeClasses.Count; c++)
        {
            // Owner, context, stamp, checksum and leak state per block, and the scan's three bits; committed per slab.
            Assert.True(SlabMeta.BytesPerBlock + SlabMeta.ScanBitsPerBlock / 8.0 <= 16);
            // With the slab's page-map entry shared out, small blocks stay within 16 bytes too.
            double perBlock = SlabMeta.BytesPerBlock + SlabMeta.ScanBitsPerBlock / 8.0 + 16.0 / SizeClasses.BlocksPerSlab(c);
            if (SizeClasses.SizeOf(c) <= 4096)
                Assert.True(perBlock <= 16, $"class {SizeClasses.SizeOf(c)}: {perBlock} bytes per block");
        }
        Assert.Equal(16, sizeof(UnitInfo));
    }

    [Fact]
    public void The_page_map_finds_the_slab_of_any_interior_address()
    {
        var type = Types.New();
        byte* p = (byte*)Heap.Malloc(3000, type);
        for (int i = 0; i < 3000; i += 97)
        {
            UnitInfo* e = PageMap.Lookup(p + i);
            Assert.True(e != null);
            Assert.Equal(UnitKind.Slab, e->Kind);
            Assert.Equal(SizeClasses.ClassOf(3000), e->Class);
        }
        byte* big = (byte*)Heap.Malloc(3 << 20, type);
        UnitInfo* head = PageMap.Lookup(big);
        Assert.Equal(UnitKind.LargeHead, head->Kind);
        UnitInfo* tail = PageMap.Lookup(big + (3 << 20) - 1);
        Assert.Equal(UnitKind.LargeTail, tail->Kind);
        Assert.Equal(KmemMap.UnitOf(big), tail->Head);
        Assert.True(PageMap.Lookup((void*)0x1000) == null);
        Heap.Free(p, type);
        Heap.Free(big, type);
    }

    [Fact]
#pragma warning disable CS0420 // only the fields' addresses are taken
    public void The_limit_counter_every_thread_writes_shares_no_cache_line_with_what_the_fast_paths_read()
    {
        var type = Types.New();
        ref byte counter = ref Unsafe.As<long, byte>(ref type.ChargedBytes);
        long[] hot =
        [
            Unsafe.ByteOffset(ref Unsafe.As<int, byte>(ref Unsafe.AsRef(in type.Index)), ref counter),
            Unsafe.ByteOffset(ref Unsafe.As<int, byte>(ref type.AllocGate), ref counter),
            Unsafe.ByteOffset(ref Unsafe.As<int, byte>(ref type.FreeKey), ref counter),
            Unsafe.ByteOffset(ref Unsafe.As<long, byte>(ref type.Chunk), ref counter),
            Unsafe.ByteOffset(ref Unsafe.As<int, byte>(ref type.Waiters), ref counter),
        ];
        foreach (long distance in hot)
            Assert.True(Math.Abs(distance) >= 64, $"a fast-path field is {distance} bytes from the shared counter");
    }
#pragma warning restore CS0420
}

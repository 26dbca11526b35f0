// PanicTests.cs — every panic on a constructed bad input, with the exact text, and the heap still usable afterwards.
using System.Runtime.InteropServices;
using Xunit;

namespace Kmem.Tests;

public unsafe class PanicTests
{
    private static string Hex(void* p) => "0x" + ((nuint)p).ToString("x");

    /// <summary>After a rejected call the type's statistics are unchanged and the heap still allocates and frees.</summary>
    private static void AssertHeapStillWorks(MallocType type, long expectInUse)
    {
        Assert.Equal(expectInUse, type.GetStats().InUse);
        void* p = Heap.Malloc(64, type);
        *(long*)p = 42;
        Heap.Free(p, type);
        Assert.Equal(expectInUse, type.GetStats().InUse);
    }

    [Fact]
    public void Free_of_null_panics()
    {
        var type = Types.New();
        PanicAssert.Panics("free: null addr (free(9) does not accept NULL)", () => Heap.Free(null, type));
        AssertHeapStillWorks(type, 0);
    }

    [Fact]
    public void Free_of_memory_Kmem_did_not_allocate_panics()
    {
        var type = Types.New();
        void* foreign = NativeMemory.Alloc(64);
        try
        {
            PanicAssert.Panics($"free: addr {Hex(foreign)} not within kmem_map", () => Heap.Free(foreign, type));
        }
        finally
        {
            NativeMemory.Free(foreign);
        }
        long* local = stackalloc long[1];
        Assert.Throws<KmemPanicException>(() => Heap.Free(local, type));
        AssertHeapStillWorks(type, 0);
    }

    [Fact]
    public void Free_of_an_interior_address_panics_unaligned()
    {
        var type = Types.New();
        byte* p = (byte*)Heap.Malloc(100, type); // 112-byte class
        PanicAssert.Panics($"free: unaligned addr {Hex(p + 16)}, size 112, type {type.ShortDesc}, mask 111", () => Heap.Free(p + 16, type));
        PanicAssert.Panics($"free: unaligned addr {Hex(p + 1)}, size 112, type {type.ShortDesc}, mask 111", () => Heap.Free(p + 1, type));
        AssertHeapStillWorks(type, 1);
        Heap.Free(p, type);

        byte* big = (byte*)Heap.Malloc(1_000_000, type);
        PanicAssert.Panics($"free: unaligned addr {Hex(big + 4096)}, size 1003520, type {type.ShortDesc}, mask 4095", () => Heap.Free(big + 4096, type));
        PanicAssert.Panics($"free: unaligned addr {Hex(big + 600_000)}, size 1003520, type {type.ShortDesc}, mask 4095", () => Heap.Free(big + 600_000, type));
        AssertHeapStillWorks(type, 1);
        Heap.Free(big, type);
        AssertHeapStillWorks(type, 0);
    }

    [Fact]
    public void Double_free_prints_multiply_freed_item_then_panics_duplicated_free()
    {
        var type = Types.New();
        void* keep = Heap.Malloc(48, type);
        void* p = Heap.Malloc(48, type);
        Heap.Free(p, type);
        PanicAssert.Panics("free: duplicated free", () => Heap.Free(p, type));
        Assert.Contains($"multiply freed item {Hex(p)}", KmemDiagnostics.Recent.Select(m => m.Split('\n')[0]));
        AssertHeapStillWorks(type, 1);

        Heap.Free(keep, type);
        // The block freed twice is handed out once only.
        var seen = new HashSet<nint>();
        for (int i = 0; i < 200; i++)
            Assert.True(seen.Add((nint)Heap.Malloc(48, type)));
        foreach (nint q in seen)
            Heap.Free((void*)q, type);
        Assert.Equal(0, type.GetStats().InUse);
    }

    [Fact]
    public void Free_of_an_address_inside_kmem_map_that_was_never_allocated_panics()
    {
        var type = Types.New();
        Heap.Free(Heap.Malloc(16, type), type); // make sure kmem_map is mapped
        byte* unused = Pages.KmemMap.Base + Pages.KmemMap.Size - 4096; // the last unit is handed out last
        PanicAssert.Panics($"free: addr {Hex(unused)} was never allocated by malloc", () => Heap.Free(unused, type));
        AssertHeapStillWorks(type, 0);
    }

    [Fact]
    public void Free_under_the_wrong_type_panics_and_keeps_the_block()
    {
        var a = Types.New();
        var b = Types.New();
        void* p = Heap.Malloc(64, a);
        PanicAssert.Panics($"free: addr {Hex(p)} belongs to type {a.ShortDesc}, not {b.ShortDesc}", () => Heap.Free(p, b));
        Assert.Equal(1, a.GetStats().InUse);
        Heap.Free(p, a);
        Assert.Equal(0, a.GetStats().InUse);
        Assert.Equal(0, b.GetStats().Requests);
    }

    [Fact]
    public void Malloc_with_a_detached_never_attached_or_null_type_panics_bogus_type()
    {
        var never = Types.New(attach: false);
        PanicAssert.Panics("malloc - bogus type", () => Heap.Malloc(16, never));
        var gone = Types.New();
        gone.Detach();
        PanicAssert.Panics("malloc - bogus type", () => Heap.Malloc(16, gone));
        PanicAssert.Panics("malloc - bogus type", () => Heap.Malloc(16, null!));
        PanicAssert.Panics("malloc - bogus type", () => Heap.Realloc(null, 16, gone));
        Assert.Equal(0, never.GetStats().Requests);
        never.Attach();
        AssertHeapStillWorks(never, 0);
    }

    [Fact]
    public void A_request_larger_than_kmem_map_panics_unless_CanFail()
    {
        var type = Types.New();
        nuint huge = (nuint)1 << 46;
        PanicAssert.Panics("malloc: allocation too large", () => Heap.Malloc(huge, type));
        PanicAssert.Panics("malloc: allocation too large", () => Heap.Malloc(nuint.MaxValue, type, MallocFlags.NoWait));
        Assert.True(Heap.Malloc(huge, type, MallocFlags.CanFail) == null);
        Assert.True(Heap.Malloc(nuint.MaxValue, type, MallocFlags.CanFail | MallocFlags.NoWait) == null);
        MallocTypeStats s = type.GetStats();
        Assert.Equal(0, s.Requests);
        Assert.Equal(0, s.MemUse);
        AssertHeapStillWorks(type, 0);
    }

    [Fact]
    public void Attaching_twice_and_detaching_twice_panic()
    {
        var type = Types.New();
        PanicAssert.Panics($"malloc_type_attach: '{type.ShortDesc}' already on list", type.Attach);
        type.Detach();
        PanicAssert.Panics($"malloc_type_detach: '{type.ShortDesc}' not on list", type.Detach);
        type.Attach();
        AssertHeapStillWorks(type, 0);
    }
}

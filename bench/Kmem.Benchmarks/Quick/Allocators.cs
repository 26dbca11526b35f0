// Quick/Allocators.cs — the allocators under test as structs behind one interface (Kmem, Kmem's MallocBatch, NativeMemory,
// mimalloc, jemalloc), so every generic workload loop is instantiated as direct code for each of them. A loop gets its
// allocator as a value made on the thread that runs it (MallocBatch is a ref struct bound to its thread).
using System.Runtime.InteropServices;
using Kmem.Benchmarks.Peers;

namespace Kmem.Benchmarks.Quick;

/// <summary>An allocator under test. <c>Free</c> gets the requested size back (jemalloc's sized free uses it).</summary>
internal unsafe interface IAllocator
{
    void* Alloc(nuint size);
    void Free(void* p, nuint size);
}

/// <summary><c>Heap.Malloc(size, type)</c> / <c>Heap.Free(p, type)</c> with one type for every allocation workload.</summary>
internal readonly unsafe struct KmemAllocator : IAllocator
{
    // One type for the whole run; every call below is one fixed site (the caller-info defaults).
    internal static readonly MallocType Type = new("bench", "benchmark allocation workloads");

    public void* Alloc(nuint size) => Heap.Malloc(size, Type);
    public void Free(void* p, nuint size) => Heap.Free(p, Type);
}

/// <summary><c>batch.Malloc(size)</c> / <c>batch.Free(p)</c> on a <see cref="MallocBatch"/> of the same type, made by the
/// thread that runs the loop (one per loop call).</summary>
internal readonly unsafe ref struct KmemBatchAllocator(MallocBatch batch) : IAllocator
{
    private readonly MallocBatch _batch = batch;

    public static KmemBatchAllocator Make() => new(Heap.Batch(KmemAllocator.Type));

    public void* Alloc(nuint size) => _batch.Malloc(size);
    public void Free(void* p, nuint size) => _batch.Free(p);
}

/// <summary><c>NativeMemory.Alloc</c> / <c>NativeMemory.Free</c>: the C runtime's malloc (glibc on Linux).</summary>
internal readonly unsafe struct NativeMemoryAllocator : IAllocator
{
    public void* Alloc(nuint size) => NativeMemory.Alloc(size);
    public void Free(void* p, nuint size) => NativeMemory.Free(p);
}

/// <summary>
/// The ideal allocator for the RSS children only: one region reserved up front and carved in order, no metadata at all,
/// nothing ever freed. Its RSS growth is the payload plus whatever the process itself adds meanwhile (JIT, runtime), so
/// another allocator's growth minus this one's is that allocator's own overhead.
/// </summary>
internal readonly unsafe struct BumpAllocator : IAllocator
{
    private const nuint RegionBytes = (nuint)80 << 20;
    private static byte* s_next, s_end;

    public void* Alloc(nuint size)
    {
        if (s_next == null)
        {
            s_next = (byte*)NativeMemory.AlignedAlloc(RegionBytes, 4096); // large: mapped, not resident until written
            s_end = s_next + RegionBytes;
        }
        size = (size + 15) & ~(nuint)15;
        if ((nuint)(s_end - s_next) < size)
            throw new OutOfMemoryException("the bump region is used up");
        byte* p = s_next;
        s_next += size;
        return p;
    }

    public void Free(void* p, nuint size)
    {
    }
}

/// <summary><c>mi_malloc</c> / <c>mi_free</c> through function pointers.</summary>
internal readonly unsafe struct MimallocAllocator : IAllocator
{
    public void* Alloc(nuint size) => NativePeers.MiMalloc(size);
    public void Free(void* p, nuint size) => NativePeers.MiFree(p);
}

/// <summary><c>mallocx(size, 0)</c> / <c>sdallocx(p, size, 0)</c> through function pointers.</summary>
internal readonly unsafe struct JemallocAllocator : IAllocator
{
    public void* Alloc(nuint size) => NativePeers.JeMallocx(size, 0);
    public void Free(void* p, nuint size) => NativePeers.JeSdallocx(p, size, 0);
}

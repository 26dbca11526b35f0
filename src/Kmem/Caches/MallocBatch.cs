// Caches/MallocBatch.cs — a handle on one thread's cache for one malloc type, held across a run of calls: the thread's
// cache and the allocation's context are looked up once, when it is made, instead of on every call. A ref struct, so
// it cannot leave the stack of the thread that made it (the cache is that thread's alone).
using Kmem.Slabs;

namespace Kmem;

/// <summary>
/// Made by <see cref="Heap.Batch"/>: <see cref="Malloc"/> and <see cref="Free"/> for one type on the calling thread,
/// without the per-call lookups of <see cref="Heap.Malloc"/> and <see cref="Heap.Free"/>. Blocks are ordinary blocks of
/// the type (statistics, limits, leak tracking and DIAGNOSTIC checks apply as to any other), attributed to where the
/// batch was made; either side may allocate or free them. A default instance panics as a bogus type does.
/// </summary>
public readonly unsafe ref struct MallocBatch
{
    private readonly byte* _tc;
    private readonly MallocType _type;
    private readonly uint _site;
    private readonly uint _context;
    private readonly string _member, _file;
    private readonly int _line;

    internal MallocBatch(byte* tc, MallocType type, uint site, uint context, string member, string file, int line)
    {
        _tc = tc;
        _type = type;
        _site = site;
        _context = context;
        _member = member;
        _file = file;
        _line = line;
    }

    /// <summary>The type the batch allocates under.</summary>
    public MallocType Type => _type;

    /// <summary>malloc(9) under the batch's type: as <see cref="Heap.Malloc"/>.</summary>
    public void* Malloc(nuint size, MallocFlags flags = MallocFlags.WaitOk)
    {
        MallocType type = _type;
        if (type is null || type.AllocGate != 0 || (flags & ~(MallocFlags.NoWait | MallocFlags.Zero | MallocFlags.CanFail)) != 0
            || size > SizeClasses.MaxSmall)
            return Heap.MallocAt(size, type, flags, _site);
        return Heap.AllocSmall(_tc, size, type, flags, _site, _context);
    }

    /// <summary>free(9) of a block of the batch's type: as <see cref="Heap.Free"/>.</summary>
    public void Free(void* addr)
    {
        if (!Heap.TryFreeSmall(_tc, (byte*)addr, _type))
            Heap.FreeAt(addr, _type, _member ?? "", _file ?? "", _line);
    }
}

// MallocFlags.cs — the malloc(9) flags: M_WAITOK, M_NOWAIT, M_ZERO, M_CANFAIL.
namespace Kmem;

/// <summary>Flags for <see cref="Heap.Malloc"/> and <see cref="Heap.Realloc"/>, with malloc(9)'s values.</summary>
[Flags]
public enum MallocFlags
{
    /// <summary>M_WAITOK (0): wait until the type's limit admits the request; never returns null.</summary>
    WaitOk = 0,
    /// <summary>M_NOWAIT: return null when the request cannot be met at once (type limit reached, no pages).</summary>
    NoWait = 1,
    /// <summary>M_ZERO: the requested bytes are zeroed.</summary>
    Zero = 2,
    /// <summary>M_CANFAIL: a request larger than can ever be allocated returns null instead of panicking.</summary>
    CanFail = 4,
}

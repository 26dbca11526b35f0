// Platform/IPageProvider.cs — the one interface through which Kmem gets address space and pages from the OS.
// Everything that calls mmap, mprotect or VirtualAlloc lives in this folder; nothing else in Kmem talks to the OS.
namespace Kmem.Platform;

/// <summary>Address space and pages from the operating system.</summary>
internal interface IPageProvider
{
    /// <summary>Size of an OS page in bytes.</summary>
    int PageSize { get; }

    /// <summary>Reserves <paramref name="size"/> bytes of inaccessible address space; returns 0 when refused.</summary>
    nint Reserve(nuint size);

    /// <summary>Makes reserved pages readable and writable (zero-filled on first touch); false when the OS refuses.</summary>
    bool Commit(nint address, nuint size);

    /// <summary>Returns the physical pages to the OS and makes the range inaccessible again; it stays reserved.</summary>
    void Decommit(nint address, nuint size);

    /// <summary>Releases a reservation made by <see cref="Reserve"/>.</summary>
    void Release(nint address, nuint size);

    /// <summary>Creates a shared-memory object of <paramref name="size"/> bytes (memfd on Linux); returns a handle, 0 when refused.</summary>
    nint CreateSharedMemory(nuint size);

    /// <summary>Maps a shared-memory object read-write at an address the OS chooses; 0 when refused.</summary>
    nint MapShared(nint handle, nuint size);

    /// <summary>Unmaps a mapping made by <see cref="MapShared"/>.</summary>
    void UnmapShared(nint address, nuint size);

    /// <summary>Closes a shared-memory object; its memory goes back to the OS once no mapping remains.</summary>
    void CloseSharedMemory(nint handle);

    /// <summary>The OS id of the calling thread (gettid on Linux), as leak reports print it.</summary>
    int CurrentThreadId();
}

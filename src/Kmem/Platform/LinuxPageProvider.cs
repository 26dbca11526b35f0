// Platform/LinuxPageProvider.cs — mmap/mprotect based pages for Linux (x64 and arm64 share these constants).
using System.Runtime.InteropServices;

namespace Kmem.Platform;

internal sealed unsafe partial class LinuxPageProvider : IPageProvider
{
    private const int ProtNone = 0, ProtRead = 1, ProtWrite = 2;
    private const int MapPrivate = 0x02, MapFixed = 0x10, MapAnonymous = 0x20, MapNoReserve = 0x4000;
    private static readonly nint MapFailed = -1;

    public int PageSize { get; } = Environment.SystemPageSize;

    public nint Reserve(nuint size)
    {
        nint p = mmap(0, size, ProtNone, MapPrivate | MapAnonymous | MapNoReserve, -1, 0);
        return p == MapFailed ? 0 : p;
    }

    public bool Commit(nint address, nuint size) => mprotect(address, size, ProtRead | ProtWrite) == 0;

    public void Decommit(nint address, nuint size)
    {
        // Mapping fresh PROT_NONE pages over the range drops the old pages at once and keeps the address space ours.
        nint p = mmap(address, size, ProtNone, MapPrivate | MapAnonymous | MapNoReserve | MapFixed, -1, 0);
        if (p == MapFailed)
        {
            // Could not remap (out of map entries): at least give the memory back and keep the range usable.
            _ = madvise(address, size, 4 /* MADV_DONTNEED */);
        }
    }

    public void Release(nint address, nuint size) => _ = munmap(address, size);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int mprotect(nint addr, nuint length, int prot);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int munmap(nint addr, nuint length);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int madvise(nint addr, nuint length, int advice);
}

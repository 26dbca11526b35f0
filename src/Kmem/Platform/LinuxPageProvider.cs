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

    public nint CreateSharedMemory(nuint size)
    {
        int fd = memfd_create("kmem-phys", 1 /* MFD_CLOEXEC */);
        if (fd < 0)
            return 0;
        if (ftruncate(fd, (nint)size) != 0)
        {
            _ = close(fd);
            return 0;
        }
        return fd + 1; // 0 means failure, so the handle is fd + 1
    }

    public nint MapShared(nint handle, nuint size)
    {
        const int mapShared = 0x01;
        nint p = mmap(0, size, ProtRead | ProtWrite, mapShared, (int)(handle - 1), 0);
        return p == MapFailed ? 0 : p;
    }

    public void UnmapShared(nint address, nuint size) => _ = munmap(address, size);

    public void CloseSharedMemory(nint handle) => _ = close((int)(handle - 1));

    // SYS_gettid: 186 on x86-64, 178 on arm64.
    private static readonly nint s_gettid = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 178 : 186;

    public int CurrentThreadId() => (int)syscall(s_gettid);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int mprotect(nint addr, nuint length, int prot);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int munmap(nint addr, nuint length);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int memfd_create(string name, uint flags);

    [LibraryImport("libc")]
    private static partial nint syscall(nint number);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int ftruncate(int fd, nint length);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int madvise(nint addr, nuint length, int advice);
}

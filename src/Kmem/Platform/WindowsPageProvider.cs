// Platform/WindowsPageProvider.cs — VirtualAlloc/VirtualFree based pages for Windows (compiled everywhere, tested on Linux only).
using System.Runtime.InteropServices;

namespace Kmem.Platform;

internal sealed partial class WindowsPageProvider : IPageProvider
{
    private const uint MemCommit = 0x1000, MemReserve = 0x2000, MemDecommit = 0x4000, MemRelease = 0x8000;
    private const uint PageNoAccess = 0x01, PageReadWrite = 0x04;

    public int PageSize { get; } = Environment.SystemPageSize;

    public nint Reserve(nuint size) => VirtualAlloc(0, size, MemReserve, PageNoAccess);

    public bool Commit(nint address, nuint size) => VirtualAlloc(address, size, MemCommit, PageReadWrite) != 0;

    public void Decommit(nint address, nuint size) => _ = VirtualFree(address, size, MemDecommit);

    public void Release(nint address, nuint size) => _ = VirtualFree(address, 0, MemRelease);

    public nint CreateSharedMemory(nuint size) =>
        CreateFileMappingW(-1, 0, PageReadWrite, (uint)((ulong)size >> 32), (uint)size, null);

    public nint MapShared(nint handle, nuint size) => MapViewOfFile(handle, 0x0002 | 0x0004 /* FILE_MAP_WRITE | READ */, 0, 0, size);

    public void UnmapShared(nint address, nuint size) => _ = UnmapViewOfFile(address);

    public void CloseSharedMemory(nint handle) => _ = CloseHandle(handle);

    public int CurrentThreadId() => (int)GetCurrentThreadId();

    [LibraryImport("kernel32")]
    private static partial uint GetCurrentThreadId();

    [LibraryImport("kernel32", SetLastError = true, StringMarshalling = StringMarshalling.Utf16)]
    private static partial nint CreateFileMappingW(nint file, nint attributes, uint protect, uint sizeHigh, uint sizeLow, string? name);

    [LibraryImport("kernel32", SetLastError = true)]
    private static partial nint MapViewOfFile(nint mapping, uint access, uint offsetHigh, uint offsetLow, nuint size);

    [LibraryImport("kernel32", SetLastError = true)]
    [return: MarshalAs(UnmanagedType.Bool)]
    private static partial bool UnmapViewOfFile(nint address);

    [LibraryImport("kernel32", SetLastError = true)]
    [return: MarshalAs(UnmanagedType.Bool)]
    private static partial bool CloseHandle(nint handle);

    [LibraryImport("kernel32", SetLastError = true)]
    private static partial nint VirtualAlloc(nint address, nuint size, uint allocationType, uint protect);

    [LibraryImport("kernel32", SetLastError = true)]
    [return: MarshalAs(UnmanagedType.Bool)]
    private static partial bool VirtualFree(nint address, nuint size, uint freeType);
}

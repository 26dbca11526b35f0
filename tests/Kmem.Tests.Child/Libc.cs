// Libc.cs — the child scenarios' own calls to mmap, mprotect and munmap (test code that maps memory behind Kmem's back),
// and the one mapping cycle both churn scenarios repeat while scans run.
using System.Runtime.InteropServices;

internal static class Libc
{
    public const int ProtNone = 0, ProtRead = 1, ProtReadWrite = 3, MapPrivateAnonymous = 0x22;

    [DllImport("libc", SetLastError = true)]
    public static extern nint mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);

    [DllImport("libc", SetLastError = true)]
    public static extern int mprotect(nint addr, nuint length, int prot);

    [DllImport("libc", SetLastError = true)]
    public static extern int munmap(nint addr, nuint length);

    /// <summary>
    /// One cycle of mapping churn: maps <paramref name="pages"/> pages, writes them, makes the first half inaccessible and
    /// the second read-only (optionally yielding meanwhile, so a scan can meet them so), restores and unmaps them. False
    /// when the mapping was refused.
    /// </summary>
    public static unsafe bool MapProtectUnmap(int pages, bool yieldWhileProtected = false)
    {
        nuint len = (nuint)pages * 4096, half = (nuint)(pages / 2) * 4096;
        nint p = mmap(0, len, ProtReadWrite, MapPrivateAnonymous, -1, 0);
        if (p == -1)
            return false;
        new Span<byte>((void*)p, (int)len).Fill(0x5a);
        mprotect(p, half, ProtNone);
        mprotect(p + (nint)half, len - half, ProtRead);
        if (yieldWhileProtected)
            Thread.Yield();
        mprotect(p, len, ProtReadWrite);
        munmap(p, len);
        return true;
    }
}

// Libc.cs — the child scenarios' own calls to mmap, mprotect and munmap (test code that maps memory behind Kmem's back).
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
}

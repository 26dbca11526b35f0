// Platform/LinuxProcessMemory.cs — the process as Linux shows it: /proc/self/maps for the mappings,
// /proc/self/task/*/syscall for stack pointers, process_vm_readv (or /proc/self/mem) for reads that cannot fault.
using System.Globalization;
using System.Runtime.InteropServices;

namespace Kmem.Platform;

internal sealed unsafe partial class LinuxProcessMemory : IProcessMemory
{
    private readonly int _pid = Environment.ProcessId;
    private int _memFd = -1;     // /proc/self/mem, opened when process_vm_readv is refused (seccomp, old kernels)
    private volatile bool _useMem;

    /// <summary>False when /proc is not mounted (some sandboxes and chroots): nothing of the process can be seen.</summary>
    public bool IsSupported { get; } = File.Exists("/proc/self/maps") && Directory.Exists("/proc/self/task");

    public List<ProcessMapping> WritableMappings()
    {
        var list = new List<ProcessMapping>(256);
        foreach (string line in File.ReadLines("/proc/self/maps"))
        {
            // start-end perms offset dev inode [path]
            int dash = line.IndexOf('-');
            int sp1 = line.IndexOf(' ', dash + 1);
            if (dash <= 0 || sp1 < 0 || line.Length < sp1 + 5)
                continue;
            ReadOnlySpan<char> perms = line.AsSpan(sp1 + 1, 4);
            if (perms[0] != 'r' || perms[1] != 'w')
                continue;
            if (!ulong.TryParse(line.AsSpan(0, dash), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong start)
                || !ulong.TryParse(line.AsSpan(dash + 1, sp1 - dash - 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong end))
                continue;
            // Skip offset, dev and inode to the path.
            int field = sp1 + 6, spaces = 0;
            int inodeStart = -1, inodeEnd = -1;
            while (field < line.Length && spaces < 3)
            {
                if (line[field] == ' ')
                {
                    spaces++;
                    if (spaces == 2)
                        inodeStart = field + 1;
                    if (spaces == 3)
                        inodeEnd = field;
                }
                field++;
            }
            string path = field < line.Length ? line[field..].Trim() : "";
            bool hasInode = inodeStart > 0 && inodeEnd > inodeStart && line.AsSpan(inodeStart, inodeEnd - inodeStart).Trim().ToString() != "0";
            bool shared = perms[3] == 's';
            // Memory, not devices: /dev/zero, POSIX shared memory and hugetlbfs live under /dev too.
            bool device = path.StartsWith("/dev/", StringComparison.Ordinal) && !path.StartsWith("/dev/zero", StringComparison.Ordinal)
                && !path.StartsWith("/dev/shm/", StringComparison.Ordinal) && !path.StartsWith("/dev/hugepages", StringComparison.Ordinal);
            // Anonymous-like shared memory holds pointers; a shared regular file (deleted or not) is data.
            bool anonymousLike = !hasInode || path.Length == 0 || path[0] == '[' || path.StartsWith("/memfd:", StringComparison.Ordinal)
                || path.StartsWith("/SYSV", StringComparison.Ordinal) || path.StartsWith("/dev/", StringComparison.Ordinal);
            bool sharedFile = shared && !anonymousLike && !device;
            list.Add(new ProcessMapping(~(nuint)start, ~(nuint)end, sharedFile, device, path == "[stack]"));
        }
        return list;
    }

    public List<ThreadStack> Threads()
    {
        var list = new List<ThreadStack>();
        string[] tasks;
        try
        {
            tasks = Directory.GetDirectories("/proc/self/task");
        }
        catch (IOException)
        {
            return list;
        }
        foreach (string dir in tasks)
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int tid))
                continue;
            nuint sp = 0;
            // A running thread reports no stack pointer; ask a few times (it may block meanwhile).
            for (int attempt = 0; attempt < 3 && sp == 0; attempt++)
            {
                string text;
                try
                {
                    text = File.ReadAllText(Path.Combine(dir, "syscall"));
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    break; // the thread ended, or the file is refused
                }
                sp = ParseStackPointer(text);
            }
            list.Add(new ThreadStack(tid, sp == 0 ? 0 : ~sp));
        }
        return list;
    }

    // "nr a1 … a6 sp pc" in a system call, "-1 sp pc" when stopped elsewhere, "running" when on a CPU.
    internal static nuint ParseStackPointer(string text)
    {
        string[] f = text.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (f.Length < 3 || f[0] == "running")
            return 0;
        string s = f[^2];
        if (s.StartsWith("0x", StringComparison.Ordinal))
            s = s[2..];
        return ulong.TryParse(s, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong v) ? (nuint)v : 0;
    }

    public nint Read(nuint addressComplement, byte* buffer, nuint length)
    {
        nuint address = ~addressComplement;
        if (!_useMem)
        {
            var local = new IoVec { Base = buffer, Length = length };
            var remote = new IoVec { Base = (void*)address, Length = length };
            nint n = process_vm_readv(_pid, &local, 1, &remote, 1, 0);
            remote.Base = null;
            if (n >= 0)
                return n;
            int errno = Marshal.GetLastPInvokeError();
            if (errno is not (1 /* EPERM */ or 38 /* ENOSYS */))
                return -1;
            OpenMem();
        }
        return _memFd < 0 ? -1 : pread(_memFd, buffer, length, (long)address);
    }

    private void OpenMem()
    {
        lock (this)
        {
            if (_useMem)
                return;
            _memFd = open("/proc/self/mem", 0 /* O_RDONLY */ | 0x80000 /* O_CLOEXEC */);
            _useMem = true;
        }
    }

    /// <summary>getcontext(3): every register of the calling thread into <paramref name="context"/> (a ucontext_t).</summary>
    [LibraryImport("libc")]
    [SuppressGCTransition]
    internal static partial int getcontext(void* context);

    /// <summary>Bytes for a ucontext_t on every Linux architecture .NET runs on (x64 968, arm64 4560).</summary>
    public const int ContextBytes = 5120;

    /// <summary>Keeps only the callee-saved registers of a context saved by <see cref="getcontext"/> (x64: rbx, rbp,
    /// r12–r15, moved to the first six words) and zeroes the rest, whose stale values would only hide leaks. Other
    /// architectures keep the whole context.</summary>
    public static void KeepCalleeSaved(byte* context)
    {
        if (RuntimeInformation.ProcessArchitecture != Architecture.X64)
            return;
        ulong* gregs = (ulong*)(context + 40); // uc_flags, uc_link, uc_stack; then mcontext_t.gregs[REG_R8 = 0 …]
        ulong r12 = gregs[4], r13 = gregs[5], r14 = gregs[6], r15 = gregs[7], rbp = gregs[10], rbx = gregs[11];
        new Span<byte>(context, ContextBytes).Clear();
        ulong* keep = (ulong*)context;
        keep[0] = rbx;
        keep[1] = rbp;
        keep[2] = r12;
        keep[3] = r13;
        keep[4] = r14;
        keep[5] = r15;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint process_vm_readv(int pid, IoVec* local, nuint localCount, IoVec* remote, nuint remoteCount, nuint flags);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint pread(int fd, byte* buffer, nuint count, long offset);
}

/// <summary>Where the OS gives Kmem no view of the process: only registered roots are scanned.</summary>
internal sealed unsafe class UnsupportedProcessMemory : IProcessMemory
{
    public bool IsSupported => false;
    public List<ProcessMapping> WritableMappings() => new();
    public List<ThreadStack> Threads() => new();
    public nint Read(nuint addressComplement, byte* buffer, nuint length) => -1;
}

// Platform/OsPages.cs — picks the page provider for the running OS and says clearly when there is none.
using System.Runtime.InteropServices;

namespace Kmem.Platform;

internal static class OsPages
{
    private static IPageProvider? s_provider;
    private static IProcessMemory? s_process;

    /// <summary>The provider for this OS; throws <see cref="PlatformNotSupportedException"/> where Kmem has none.</summary>
    public static IPageProvider Provider => s_provider ??= Create();

    /// <summary>The whole-process view for the leak detector's process roots (unsupported outside Linux).</summary>
    public static IProcessMemory Process => s_process ??= OperatingSystem.IsLinux() && Environment.Is64BitProcess
        ? new LinuxProcessMemory() : new UnsupportedProcessMemory();

    /// <summary>Bytes a caller reserves (on its stack) for <see cref="SaveRegisters"/>.</summary>
    public const int RegisterBytes = LinuxProcessMemory.ContextBytes;

    /// <summary>
    /// Saves the calling thread's registers into <paramref name="buffer"/> (Linux; elsewhere it stays zeroed), keeping
    /// the callee-saved ones: a pointer the caller holds only in a register becomes memory the leak scan reads. Inlined
    /// for correctness, not speed: the registers must be saved by the frame that holds the buffer, before any callee
    /// pushes them below it.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static unsafe void SaveRegisters(byte* buffer)
    {
        if (OperatingSystem.IsLinux())
        {
            _ = LinuxProcessMemory.getcontext(buffer);
            LinuxProcessMemory.KeepCalleeSaved(buffer);
        }
    }

    /// <summary>Replaces the process view (tests of other OSes' behaviour); null restores the real one.</summary>
    internal static void OverrideProcess(IProcessMemory? process) => s_process = process;

    /// <summary>Replaces the provider (failure injection in tests); must be called before the heap starts.</summary>
    internal static void Override(IPageProvider provider) => s_provider = provider;

    private static IPageProvider Create()
    {
        if (OperatingSystem.IsLinux() && Environment.Is64BitProcess)
            return new LinuxPageProvider();
        if (OperatingSystem.IsWindows() && Environment.Is64BitProcess)
            return new WindowsPageProvider();
        throw new PlatformNotSupportedException(
            $"Kmem supports 64-bit Linux and Windows; this process runs on {RuntimeInformation.OSDescription} ({RuntimeInformation.ProcessArchitecture}).");
    }

    /// <summary>Physical memory available to this process (container limits included).</summary>
    public static ulong PhysicalMemory
    {
        get
        {
            long total = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
            return total > 0 ? (ulong)total : 4UL << 30;
        }
    }
}

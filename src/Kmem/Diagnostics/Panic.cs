// Diagnostics/Panic.cs — raises a panic under the configured policy, after logging the message.
using System.Diagnostics.CodeAnalysis;

namespace Kmem.Diagnostics;

internal static class Panic
{
    [DoesNotReturn]
    public static void Raise(string message)
    {
        KmemDiagnostics.Publish(KmemMessageKind.Panic, "panic: " + message);
        if (KmemOptions.Panic == PanicMode.FailFast)
            Environment.FailFast("panic: " + message);
        throw new KmemPanicException(message);
    }

    /// <summary>Formats an address the way the kernel's %p does.</summary>
    public static unsafe string Addr(void* p) => "0x" + ((nuint)p).ToString("x");
}

// Platform/IProcessMemory.cs — the one interface through which the leak detector sees the whole process: its writable
// mappings, its threads' stack pointers, and fault-free reads of memory Kmem does not own. Every address crossing this
// interface is complemented (~address), so no list the scan itself reads can hold a raw pointer to a tracked object.
namespace Kmem.Platform;

/// <summary>One readable and writable mapping of the process. Addresses are complemented.</summary>
internal readonly struct ProcessMapping(nuint startComplement, nuint endComplement, bool sharedFile, bool device, bool isMainStack)
{
    public readonly nuint StartComplement = startComplement;
    public readonly nuint EndComplement = endComplement;
    /// <summary>A shared mapping of a regular file (pointers do not live there; reading it would page the file in).</summary>
    public readonly bool SharedFile = sharedFile;
    /// <summary>A mapping of a device (reads may have side effects).</summary>
    public readonly bool Device = device;
    /// <summary>The main thread's stack ([stack]).</summary>
    public readonly bool IsMainStack = isMainStack;
}

/// <summary>A thread of the process and where its stack pointer was (complemented; 0 when the thread was running).</summary>
internal readonly record struct ThreadStack(int Tid, nuint StackPointerComplement);

internal unsafe interface IProcessMemory
{
    /// <summary>False where the OS gives no view of the process (only registered roots are scanned there).</summary>
    bool IsSupported { get; }

    /// <summary>The readable and writable mappings, in address order.</summary>
    List<ProcessMapping> WritableMappings();

    /// <summary>The process's threads with their stack pointers where the OS reports one.</summary>
    List<ThreadStack> Threads();

    /// <summary>Copies up to <paramref name="length"/> bytes from this process's address ~<paramref name="addressComplement"/>
    /// into <paramref name="buffer"/> without ever faulting; returns the bytes copied (less at the first unreadable page), or
    /// −1 when nothing could be read.</summary>
    nint Read(nuint addressComplement, byte* buffer, nuint length);
}

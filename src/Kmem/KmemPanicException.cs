// KmemPanicException.cs — panic(9): what Kmem throws when a caller breaks the allocator's rules.
namespace Kmem;

/// <summary>
/// Thrown where the kernel would panic: a bad free, a bogus type, an impossible request. The heap is left
/// consistent: the call that panicked changed nothing. Set <see cref="KmemOptions.Panic"/> to
/// <see cref="PanicMode.FailFast"/> (or <c>KMEM_PANIC=failfast</c>) to end the process instead.
/// </summary>
public sealed class KmemPanicException : Exception
{
    public KmemPanicException() : base("panic") { }
    public KmemPanicException(string message) : base(message) { }
    public KmemPanicException(string message, Exception inner) : base(message, inner) { }
}

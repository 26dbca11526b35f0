// PerCpu/PerCpuPtr.cs — the handle of a per-CPU object (alloc_percpu's __percpu pointer).
using System.Runtime.CompilerServices;

namespace Kmem;

/// <summary>
/// A per-CPU object: one zeroed copy per possible CPU, each in its CPU's unit, <see cref="Stride"/> bytes apart, so copies
/// of different CPUs never share a cache line. <see cref="Cookie"/> is the address of CPU 0's copy.
/// </summary>
public readonly unsafe struct PerCpuPtr : IEquatable<PerCpuPtr>
{
    internal PerCpuPtr(void* cookie) => Cookie = cookie;

    /// <summary>The address of CPU 0's copy; a conservative scan that finds it finds the object.</summary>
    public void* Cookie { get; }

    /// <summary>Whether this is the null handle.</summary>
    public bool IsNull => Cookie == null;

    /// <summary>Distance between the copies of two neighbouring CPUs.</summary>
    public static nuint Stride => Pages.KmemMap.UnitSize;

    /// <summary>Copies per object: one per possible CPU (<see cref="Environment.ProcessorCount"/>).</summary>
    public static int Copies => PerCpuAllocator.Copies;

    /// <summary>The copy of <paramref name="cpu"/>: <c>Cookie + cpu × Stride</c>.</summary>
    public void* ForCpu(int cpu)
    {
        if ((uint)cpu >= (uint)PerCpuAllocator.Copies)
            throw new ArgumentOutOfRangeException(nameof(cpu), cpu, $"CPUs are numbered 0 to {PerCpuAllocator.Copies - 1}");
        if (Cookie == null)
            throw new InvalidOperationException("null per-CPU pointer");
        return (byte*)Cookie + (nuint)cpu * Stride;
    }

    /// <summary>The copy of the CPU the calling thread runs on (<see cref="Thread.GetCurrentProcessorId"/>).</summary>
    public void* ThisCpu() => ForCpu(CurrentCpu());

    /// <summary>The CPU number <see cref="ThisCpu"/> uses: the processor id, folded into the copies.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int CurrentCpu() => Thread.GetCurrentProcessorId() % PerCpuAllocator.Copies;

    public bool Equals(PerCpuPtr other) => Cookie == other.Cookie;
    public override bool Equals(object? obj) => obj is PerCpuPtr p && Equals(p);
    public override int GetHashCode() => ((nuint)Cookie).GetHashCode();
    public static bool operator ==(PerCpuPtr a, PerCpuPtr b) => a.Equals(b);
    public static bool operator !=(PerCpuPtr a, PerCpuPtr b) => !a.Equals(b);
    public override string ToString() => $"percpu 0x{(nuint)Cookie:x}";
}

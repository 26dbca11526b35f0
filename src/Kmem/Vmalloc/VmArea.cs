// Vmalloc/VmArea.cs — struct vm_struct: the descriptor of a vmalloc area, itself a Kmem block of type "vmarea".
using System.Runtime.InteropServices;
using Kmem.Types;

namespace Kmem;

/// <summary>The descriptor's layout in native memory. <see cref="Addr"/> is a real pointer to the area on purpose:
/// kmemleak counts it as one of the two references a vmalloc'd area needs.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct VmStruct
{
    public void* Addr;
    public nuint Size;          // mapped bytes (whole pages, guard pages excluded)
    public nuint RequestedSize;
    public int TypeIndex;
    public uint Site;
}

/// <summary>
/// A vmalloc area (the kernel's <c>vm_struct</c>): <see cref="Addr"/>, <see cref="Size"/>, the requested size and the
/// type. The descriptor lives in Kmem memory of type <see cref="Heap.VmAreaType"/>; <see cref="Descriptor"/> is its address.
/// </summary>
public readonly unsafe struct VmArea : IEquatable<VmArea>
{
    private readonly VmStruct* _desc;

    internal VmArea(VmStruct* desc) => _desc = desc;

    /// <summary>First byte of the area.</summary>
    public void* Addr => Desc->Addr;

    /// <summary>Mapped bytes: the requested size rounded up to whole pages.</summary>
    public nuint Size => Desc->Size;

    /// <summary>The size Vmalloc was asked for.</summary>
    public nuint RequestedSize => Desc->RequestedSize;

    /// <summary>The type the area is accounted to.</summary>
    public MallocType Type => TypeRegistry.ByIndex(Desc->TypeIndex)!;

    // The descriptor; a default VmArea has none, and says so instead of dereferencing null.
    private VmStruct* Desc => _desc != null ? _desc : throw new InvalidOperationException("null vmalloc area");

    /// <summary>The address of the descriptor block itself.</summary>
    public void* Descriptor => _desc;

    internal VmStruct* Struct => _desc;

    public bool Equals(VmArea other) => _desc == other._desc;
    public override bool Equals(object? obj) => obj is VmArea a && Equals(a);
    public override int GetHashCode() => ((nuint)_desc).GetHashCode();
    public static bool operator ==(VmArea a, VmArea b) => a.Equals(b);
    public static bool operator !=(VmArea a, VmArea b) => !a.Equals(b);
    public override string ToString() => _desc == null ? "vm_struct null"
        : $"vm_struct 0x{(nuint)Addr:x} size {Size} ({RequestedSize} requested, {Type.ShortDesc})";
}

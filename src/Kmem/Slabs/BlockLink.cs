// Slabs/BlockLink.cs — how free lists store a block's address: as its offset in kmem_map plus one (0 ends a list).
// An offset is a small integer, never a pointer, so no stale link can make a leaked block look referenced.
using System.Runtime.CompilerServices;
using Kmem.Pages;

namespace Kmem.Slabs;

internal static unsafe class BlockLink
{
    /// <summary>Bytes of a free block the lists use: the link and the depot's batch link.</summary>
    public const int OverlayBytes = 2 * 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static nuint Encode(byte* p) => (nuint)(p - KmemMap.Base) + 1;

    /// <summary>Decodes a non-zero link.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* Decode(nuint link) => KmemMap.Base + (link - 1);

    /// <summary>The kmem_map offset a non-zero link names (it may be garbage: callers check it before use).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static nuint OffsetOf(nuint link) => link - 1;

    /// <summary>The link stored in a free block's first word.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref nuint Next(byte* block) => ref *(nuint*)block;

    /// <summary>The batch link stored in a batch head's second word (depot only).</summary>
    public static ref nuint NextBatch(byte* block) => ref *((nuint*)block + 1);
}

// Slabs/SizeClasses.cs — the size classes: 16 to 112 bytes in 16-byte steps, then four classes per power of two
// (at most 25% apart) up to 32 KiB. Owns the size→class table, the per-class batch sizes and slot arithmetic.
using System.Runtime.CompilerServices;

namespace Kmem.Slabs;

internal static class SizeClasses
{
    public const int Count = 40;
    public const int MaxSmall = 32768;
    public const int MinSize = 16;

    private static readonly uint[] s_sizes = BuildSizes();
    private static readonly byte[] s_classOf = BuildClassTable();
    private static readonly ulong[] s_reciprocal = BuildReciprocals();
    private static readonly int[] s_batch = BuildBatches();

    private static uint[] BuildSizes()
    {
        var sizes = new List<uint>();
        for (uint s = 16; s < 128; s += 16)
            sizes.Add(s);
        for (int k = 7; k < 15; k++)
            for (uint j = 0; j < 4; j++)
                sizes.Add((1u << k) + (j << (k - 2)));
        sizes.Add(MaxSmall);
        if (sizes.Count != Count)
            throw new InvalidOperationException("size class table is inconsistent");
        return sizes.ToArray();
    }

    private static byte[] BuildClassTable()
    {
        var table = new byte[MaxSmall / 16 + 1];
        int c = 0;
        for (int i = 0; i < table.Length; i++)
        {
            while (s_sizes[c] < (uint)i * 16)
                c++;
            table[i] = (byte)c;
        }
        return table;
    }

    private static ulong[] BuildReciprocals()
    {
        var r = new ulong[Count];
        for (int c = 0; c < Count; c++)
        {
            ulong d = s_sizes[c] >> 4;
            r[c] = ((1UL << 32) + d - 1) / d;
        }
        return r;
    }

    /// <summary>The class of a request of at most <see cref="MaxSmall"/> bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int ClassOf(nuint size) => s_classOf[(int)((size + 15) >> 4)];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint SizeOf(int cls) => s_sizes[cls];

    /// <summary>Slot number of the block starting at <paramref name="offsetInUnit"/> (exact for every class and unit offset).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint SlotOf(int cls, nuint offsetInUnit) => (uint)(((ulong)(offsetInUnit >> 4) * s_reciprocal[cls]) >> 32);

    /// <summary>Blocks per 256 KiB slab.</summary>
    public static uint BlocksPerSlab(int cls) => (uint)(Pages.KmemMap.UnitSize / s_sizes[cls]);

    private static int[] BuildBatches()
    {
        var b = new int[Count];
        for (int c = 0; c < Count; c++)
        {
            uint s = s_sizes[c];
            b[c] = s <= 128 ? 64 : s <= 1024 ? 32 : s <= 4096 ? 16 : s <= 16384 ? 8 : 4;
        }
        return b;
    }

    /// <summary>Blocks moved at once between a thread cache and the depot.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int BatchOf(int cls) => s_batch[cls];

    /// <summary>Bit in a type's size set for a small class.</summary>
    public static ulong SizeBit(int cls) => 1UL << cls;
}

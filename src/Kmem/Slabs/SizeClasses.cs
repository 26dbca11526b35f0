// Slabs/SizeClasses.cs — the size classes: 16 to 112 bytes in 16-byte steps, then four classes per power of two
// (at most 25% apart) up to 32 KiB. Owns the size→class table, per-class constants (batch, blocks per slab, the
// reciprocal for slot arithmetic). The tables are native so the fast paths read them without bounds checks.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Kmem.Slabs;

/// <summary>Constants of one size class.</summary>
[StructLayout(LayoutKind.Sequential, Size = 32)]
internal struct ClassInfo
{
    public uint Size;
    public uint BlocksPerSlab;
    public int Batch;
    public ulong Reciprocal;  // ceil(2^32 / (Size / 16))
}

internal static unsafe class SizeClasses
{
    public const int Count = 40;
    public const int MaxSmall = 32768;
    public const int MinSize = 16;

    private static readonly ClassInfo* s_info = BuildInfo();
    private static readonly byte* s_classOf = BuildClassTable();

    static SizeClasses() => ApplyMinBucket(KmemOptions.MinBucketShift);

    private static ClassInfo* BuildInfo()
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
        // Static tables that live as long as the process; they hold sizes only, no addresses.
        var info = (ClassInfo*)NativeMemory.AllocZeroed((nuint)(Count * sizeof(ClassInfo)));
        Pages.OwnRegions.Add(info, (nuint)(Count * sizeof(ClassInfo)));
        for (int c = 0; c < Count; c++)
        {
            uint s = sizes[c];
            ulong d = s >> 4;
            info[c] = new ClassInfo
            {
                Size = s,
                BlocksPerSlab = (uint)(Pages.KmemMap.UnitSize / s),
                Batch = s <= 128 ? 64 : s <= 1024 ? 32 : s <= 4096 ? 16 : s <= 16384 ? 8 : 4,
                Reciprocal = ((1UL << 32) + d - 1) / d,
            };
        }
        return info;
    }

    private static byte* BuildClassTable()
    {
        const int entries = MaxSmall / 16 + 1;
        var table = (byte*)NativeMemory.AllocZeroed(entries);
        Pages.OwnRegions.Add(table, entries);
        int c = 0;
        for (int i = 0; i < entries; i++)
        {
            while (s_info[c].Size < (uint)i * 16)
                c++;
            table[i] = (byte)c;
        }
        return table;
    }

    /// <summary>Makes requests below 1 &lt;&lt; <paramref name="shift"/> bytes use the class of that size (MINBUCKET;
    /// shifts below 4 leave the table alone: Kmem refuses them when it starts).</summary>
    public static void ApplyMinBucket(int shift)
    {
        if (shift < KmemOptions.SizeClassesMinShift || shift > KmemOptions.MaxMinBucketShift)
            return;
        uint minBucket = 1u << shift;
        int c = 0;
        for (int i = 0; i <= MaxSmall / 16; i++)
        {
            uint size = Math.Max((uint)i * 16, minBucket);
            while (s_info[c].Size < size)
                c++;
            s_classOf[i] = (byte)c;
        }
    }

    /// <summary>The class of a request of at most <see cref="MaxSmall"/> bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int ClassOf(nuint size) => s_classOf[(size + 15) >> 4];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ClassInfo* Info(int cls) => s_info + cls;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint SizeOf(int cls) => s_info[cls].Size;

    /// <summary>Slot number of the block starting at <paramref name="offsetInUnit"/> (exact for every class and unit offset).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint SlotOf(int cls, nuint offsetInUnit) => SlotOf(s_info + cls, offsetInUnit);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint SlotOf(ClassInfo* info, nuint offsetInUnit) => (uint)(((ulong)(offsetInUnit >> 4) * info->Reciprocal) >> 32);

    /// <summary>Blocks per 256 KiB slab.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint BlocksPerSlab(int cls) => s_info[cls].BlocksPerSlab;

    /// <summary>Blocks moved at once between a thread cache and the depot.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int BatchOf(int cls) => s_info[cls].Batch;

    /// <summary>Bit in a type's size set for a small class.</summary>
    public static ulong SizeBit(int cls) => 1UL << cls;
}

// PerCpu/PerCpuAllocator.cs — alloc_percpu: chunks of one 256 KiB unit per CPU taken from kmem_map; an object takes the
// same offset in every CPU's unit. Free space is a bitmap of 16-byte granules per chunk; live objects are kept by offset.
using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using Kmem.Pages;

namespace Kmem;

internal static unsafe class PerCpuAllocator
{
    public static readonly int Copies = Math.Max(1, Environment.ProcessorCount);
    public const int MaxSize = 64 * 1024;
    public const int MaxAlign = 4096;
    private const int Granule = 16;
    private const int GranulesPerUnit = (int)(KmemMap.UnitSize / Granule);

    private sealed class Chunk(uint firstUnit)
    {
        public readonly uint FirstUnit = firstUnit;
        public readonly ulong[] Used = new ulong[GranulesPerUnit / 64];
        public readonly Dictionary<uint, Live> Objects = new(); // by first granule
        public int FreeGranules = GranulesPerUnit;
    }

    /// <summary>A live object: its granules, owner and site.</summary>
    internal readonly record struct Live(uint Granules, ushort TypeIndex, uint Site);

    private static readonly object s_lock = new();
    private static readonly Dictionary<uint, Chunk> s_chunks = new(); // by first unit

    /// <summary>Bytes an object of <paramref name="size"/> takes in all copies together.</summary>
    public static long Footprint(nuint size) => (long)((size + Granule - 1) / Granule * Granule) * Copies;

    /// <summary>Places an object; returns CPU 0's copy (zeroed in every copy), or null when no pages could be had.</summary>
    public static byte* Alloc(nuint size, nuint align, ushort typeIndex, uint site)
    {
        uint granules = (uint)((size + Granule - 1) / Granule);
        uint alignGranules = (uint)Math.Max(1, (int)align / Granule);
        lock (s_lock)
        {
            foreach (Chunk c in s_chunks.Values)
            {
                if (c.FreeGranules >= granules && TryPlace(c, granules, alignGranules, typeIndex, site, out byte* p))
                    return p;
            }
            Chunk? fresh = NewChunk();
            if (fresh is null)
                return null;
            return TryPlace(fresh, granules, alignGranules, typeIndex, site, out byte* q) ? q : null;
        }
    }

    /// <summary>Removes the object whose CPU 0 copy is <paramref name="cookie"/>; null when there is none.</summary>
    public static Live? Free(byte* cookie)
    {
        lock (s_lock)
        {
            if (!Find(cookie, out Chunk? c, out uint granule) || !c.Objects.Remove(granule, out Live live))
                return null;
            for (uint g = granule; g < granule + live.Granules; g++)
                c.Used[g / 64] &= ~(1UL << (int)(g % 64));
            c.FreeGranules += (int)live.Granules;
            return live;
        }
    }

    /// <summary>The live object at <paramref name="cookie"/>, if any.</summary>
    public static Live? Lookup(byte* cookie)
    {
        lock (s_lock)
            return Find(cookie, out Chunk? c, out uint granule) && c.Objects.TryGetValue(granule, out Live live) ? live : null;
    }

    /// <summary>The cookie of the live object whose CPU 0 copy contains <paramref name="p"/> (interior allowed), or null.</summary>
    public static byte* FindContaining(byte* p)
    {
        lock (s_lock)
        {
            if (!Find((byte*)((nuint)p & ~(nuint)(Granule - 1)), out Chunk? c, out uint granule))
                return null;
            for (uint g = granule, steps = 0; steps <= MaxSize / Granule; g--, steps++)
            {
                if (c.Objects.TryGetValue(g, out Live live))
                    return g + live.Granules > granule ? KmemMap.UnitAddress(c.FirstUnit) + (nuint)g * Granule : null;
                if (g == 0)
                    break;
            }
            return null;
        }
    }

    /// <summary>One chunk as the heap verifier sees it: its first unit, free count, bitmap and objects (by granule).</summary>
    internal sealed record ChunkView(uint FirstUnit, int FreeGranules, ulong[] Used, KeyValuePair<uint, Live>[] Objects);

    public const int UnitGranules = GranulesPerUnit;

    /// <summary>A copy of every chunk's bookkeeping, taken under the lock.</summary>
    public static List<ChunkView> Snapshot()
    {
        lock (s_lock)
            return s_chunks.Values.Select(c => new ChunkView(c.FirstUnit, c.FreeGranules, (ulong[])c.Used.Clone(), c.Objects.ToArray())).ToList();
    }

    private static bool Find(byte* cookie, [NotNullWhen(true)] out Chunk? chunk, out uint granule)
    {
        chunk = null;
        granule = 0;
        UnitInfo* e = PageMap.Lookup(cookie);
        if (e == null || e->Kind != UnitKind.PerCpu)
            return false;
        uint unit = KmemMap.UnitOf(cookie);
        if (unit != e->Head || !s_chunks.TryGetValue(unit, out chunk))
            return false; // not CPU 0's unit
        nuint off = (nuint)(cookie - KmemMap.UnitAddress(unit));
        granule = (uint)(off / Granule);
        return off % Granule == 0;
    }

    private static Chunk? NewChunk()
    {
        uint units = (uint)Copies;
        long first = KmemMap.AllocUnits(units, units * KmemMap.UnitSize);
        if (first < 0)
            return null;
        PageMap.MarkRun((uint)first, units, UnitKind.PerCpu, UnitKind.PerCpu, 0, 0, 0);
        var c = new Chunk((uint)first);
        s_chunks.Add(c.FirstUnit, c);
        return c;
    }

    private static bool TryPlace(Chunk c, uint granules, uint alignGranules, ushort typeIndex, uint site, out byte* cookie)
    {
        cookie = null;
        for (uint g = 0; g + granules <= GranulesPerUnit; g += alignGranules)
        {
            uint busy = FirstUsed(c, g, granules);
            if (busy == uint.MaxValue)
            {
                for (uint k = g; k < g + granules; k++)
                    c.Used[k / 64] |= 1UL << (int)(k % 64);
                c.FreeGranules -= (int)granules;
                c.Objects.Add(g, new Live(granules, typeIndex, site));
                byte* p = KmemMap.UnitAddress(c.FirstUnit) + (nuint)g * Granule;
                for (int cpu = 0; cpu < Copies; cpu++)
                    new Span<byte>(p + (nuint)cpu * KmemMap.UnitSize, (int)(granules * Granule)).Clear();
                cookie = p;
                return true;
            }
            // Skip past the used granule, keeping the alignment.
            g = (busy + 1 + alignGranules - 1) / alignGranules * alignGranules - alignGranules;
        }
        return false;
    }

    // The first used granule in [start, start + count), or uint.MaxValue when all are free.
    private static uint FirstUsed(Chunk c, uint start, uint count)
    {
        for (uint g = start; g < start + count;)
        {
            ulong word = c.Used[g / 64] >> (int)(g % 64);
            if (word != 0)
            {
                uint hit = g + (uint)BitOperations.TrailingZeroCount(word);
                return hit < start + count ? hit : uint.MaxValue;
            }
            g = (g / 64 + 1) * 64;
        }
        return uint.MaxValue;
    }
}

// Diagnostics/VmstatFormatter.cs — renders NetBSD's `vmstat -m` text (vmstat.c 1.141 domem()) from folded statistics.
using System.Text;
using Kmem.Slabs;
using Kmem.Types;

namespace Kmem.Diagnostics;

internal static class VmstatFormatter
{
    public static string Format()
    {
        List<BucketStats> buckets = ClassStatistics.Fold();
        MallocType[] types = TypeRegistry.AttachedSnapshot();
        var sizeBits = new ulong[types.Length];
        MallocTypeStats[] folded = TypeStatistics.FoldAll(types, sizeBits);
        var stats = new List<(MallocTypeStats Stats, ulong Bits)>();
        for (int i = 0; i < folded.Length; i++)
            if (folded[i].Requests != 0)
                stats.Add((folded[i], sizeBits[i]));

        var o = new StringBuilder();
        if (buckets.Count == 0)
        {
            o.Append("Kmem statistics are not being gathered by the kernel.\n");
            AppendPhysRegions(o);
            return o.ToString();
        }
        o.Append("Memory statistics by bucket size\n");
        o.Append("    Size   In Use   Free   Requests  HighWater  Couldfree\n");
        foreach (BucketStats b in buckets)
            o.Append($"{b.Size,8} {b.InUse,8} {b.Free,6} {b.Requests,10} {b.HighWater,7} {0,10}\n");

        o.Append("\nMemory usage type by bucket size\n");
        o.Append("    Size  Type(s)\n");
        foreach (BucketStats b in buckets)
        {
            var names = new List<string>();
            foreach ((MallocTypeStats s, ulong bits) in stats)
                if ((bits & (1UL << b.Bit)) != 0)
                    names.Add(s.Type);
            AppendBucketTypes(o, b.Size, names);
        }

        o.Append("\nMemory statistics by type                           Type  Kern\n");
        o.Append("         Type  InUse MemUse HighUse  Limit Requests Limit Limit Size(s)\n");
        long totalUse = 0, totalReq = 0;
        foreach ((MallocTypeStats s, ulong _) in stats)
        {
            o.Append($"{s.Type,14}{s.InUse,6}{KiB(s.MemUse),6}K{KiB(s.HighUse),7}K{KiB((long)Math.Min(s.Limit, long.MaxValue)),6}K{s.Requests,9}{s.LimitBlocks,5}{0,6}");
            for (int i = 0; i < s.SizesUsed.Count; i++)
                o.Append(i == 0 ? "  " : ",").Append(s.SizesUsed[i]);
            o.Append('\n');
            totalUse += s.MemUse;
            totalReq += s.Requests;
        }
        long totalFree = 0;
        foreach (BucketStats b in buckets)
            totalFree += (long)b.Size * b.Free;
        o.Append("\nMemory totals:  In Use    Free    Requests\n");
        o.Append($"              {KiB(totalUse),7}K {KiB(totalFree),6}K    {totalReq,8}\n\n");
        AppendPhysRegions(o);
        return o.ToString();
    }

    /// <summary>One line of "Memory usage type by bucket size", wrapped as vmstat wraps it near 80 columns.</summary>
    internal static void AppendBucketTypes(StringBuilder o, ulong size, IReadOnlyList<string> names)
    {
        int len = 8;
        for (int i = 0; i < names.Count; i++)
        {
            string name = names[i];
            len += 2 + name.Length;
            if (i == 0)
                o.Append($"{size,8}  {name}");
            else
                o.Append(',');
            if (len >= 80)
            {
                o.Append("\n\t ");
                len = 10 + name.Length;
            }
            if (i != 0)
                o.Append(' ').Append(name);
        }
        o.Append('\n');
    }

    /// <summary>Kmem's own section: the physical regions (base, size, whether mapped, bytes handed out).</summary>
    private static void AppendPhysRegions(StringBuilder o)
    {
        PhysRegion[] regions = PhysRegion.Snapshot();
        if (regions.Length == 0)
            return;
        o.Append("Physical regions\n");
        o.Append("              Base        Size  Mapped   Allocated\n");
        foreach (PhysRegion r in regions)
            o.Append($"{"0x" + r.Base.ToString("x"),18} {(ulong)r.Size,11}  {(r.IsMapped ? "yes" : "no"),6} {(ulong)r.Allocated,11}\n");
        o.Append('\n');
    }

    private static long KiB(long bytes) => (bytes + 1023) / 1024;
}

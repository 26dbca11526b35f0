// Leak/LeakReportFormatter.cs — the kernel's text formats: the /sys/kernel/debug/kmemleak report and dump= output.
using System.Text;
using Kmem.Diagnostics;
using Kmem.Pages;
using Kmem.Types;

namespace Kmem.Leak;

internal static unsafe class LeakReportFormatter
{
    public static void AppendReport(StringBuilder o, Unreferenced u, string? trace)
    {
        byte* addr = AddressOf(u);
        string kind = u.Kind switch { RecordKind.PerCpu => " (percpu)", RecordKind.Phys => " (phys)", _ => "" };
        AllocContexts.ThreadInfo thread = AllocContexts.ThreadOf(u.Context);
        o.Append($"unreferenced object{kind} 0x{(nuint)addr:x} (size {u.Size}):\n");
        o.Append($"  comm \"{thread.Name}\", pid {thread.OsThreadId}, jiffies {u.BirthMs}\n");
        int n = (int)Math.Min(u.Size, 32);
        byte* contents = stackalloc byte[32];
        if (CopyContents(u, contents, n))
        {
            o.Append(u.Kind == RecordKind.PerCpu ? $"  hex dump (first {n} bytes on cpu 0):\n" : $"  hex dump (first {n} bytes):\n");
            AppendHexDump(o, contents, n);
        }
        o.Append($"  backtrace (crc {u.Crc:x}):\n");
        o.Append("    ").Append(AllocContexts.Describe(u.Context)).Append('\n');
        if (trace is not null)
            foreach (string frame in trace.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                o.Append("    ").Append(frame.Trim()).Append('\n');
    }

    // The first bytes of the object, copied safely: slab memory is never unmapped; records' memory can be (a concurrent
    // free, an unmapped region) and is read under the unmap gate, only while still registered; foreign memory goes
    // through the fault-free copy. False when it cannot be read now.
    private static bool CopyContents(Unreferenced u, byte* buffer, int n)
    {
        if (u.Object.Record is not { } r)
        {
            Buffer.MemoryCopy(AddressOf(u), buffer, n, n);
            return true;
        }
        lock (KmemMap.UnmapGate)
        {
            if (!LeakTracking.IsRegistered(r))
                return false;
            byte* from = r.Kind == RecordKind.Phys ? (byte*)Heap.PhysToVirt(~r.Key) : AddressOf(u);
            if (from == null)
                return false;
            if (r.Kind == RecordKind.Foreign && RootReader.CanCopy(Platform.OsPages.Process)) // as the scan reads it
                return Platform.OsPages.Process.Read(~(nuint)from, buffer, (nuint)n) == n;
            Buffer.MemoryCopy(from, buffer, n, n);
            return true;
        }
    }

    /// <summary>Rows of 16 bytes: hex bytes separated by spaces, two spaces, then the ASCII column ('.' if not printable).</summary>
    public static void AppendHexDump(StringBuilder o, byte* p, int n)
    {
        for (int row = 0; row < n; row += 16)
        {
            int len = Math.Min(16, n - row);
            var hex = new StringBuilder();
            var ascii = new StringBuilder();
            for (int i = 0; i < len; i++)
            {
                byte b = p[row + i];
                if (i > 0)
                    hex.Append(' ');
                hex.Append(b.ToString("x2"));
                ascii.Append(b is >= 0x20 and < 0x7f ? (char)b : '.');
            }
            o.Append("    ").Append(hex.ToString().PadRight(16 * 3 - 1)).Append("  ").Append(ascii).Append('\n');
        }
    }

    private static string SiteOf(uint context, Dictionary<uint, string> sites)
    {
        if (!sites.TryGetValue(context, out string? site))
            sites.Add(context, site = AllocContexts.Describe(context));
        return site;
    }

    public static byte* AddressOf(Unreferenced u) => u.Kind switch
    {
        RecordKind.Foreign => (byte*)~u.Offset,
        RecordKind.Phys => (byte*)~u.Offset,
        _ => KmemMap.Base + u.Offset + u.Front,
    };

    // sites: descriptions of contexts already made in this batch.
    public static LeakReport ToReport(Unreferenced u, long scanStartMs, Dictionary<uint, string> sites) => new(
        (nuint)AddressOf(u), u.Size, TypeRegistry.ByIndex(u.TypeIndex)?.ShortDesc ?? "", SiteOf(u.Context, sites),
        u.Direct, TimeSpan.FromMilliseconds(Math.Max(0, scanStartMs - u.BirthMs)),
        u.Kind switch
        {
            null => LeakObjectKind.Block,
            RecordKind.Large => LeakObjectKind.Large,
            RecordKind.Vmalloc => LeakObjectKind.Vmalloc,
            RecordKind.PerCpu => LeakObjectKind.PerCpu,
            RecordKind.Foreign => u.Object.Record?.Guarded == true ? LeakObjectKind.Block : LeakObjectKind.Foreign,
            _ => LeakObjectKind.Phys,
        },
        u.New);
}

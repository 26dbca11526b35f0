// Checks/MallocLog.cs — MALLOCLOG: a ring of the last N DIAGNOSTIC allocation and free events (address, size, type,
// operation, site). When a check fires, the events of that address and of its neighbours are printed with it.
// Addresses are stored complemented, in native memory the leak scan excludes, so the log hides no leak.
using System.Runtime.InteropServices;
using System.Text;
using Kmem.Diagnostics;

namespace Kmem.Checks;

internal static unsafe class MallocLog
{
    public const int MaxCapacity = 10_000_000;
    public const byte Alloc = 1, Free = 2;

    /// <summary>How far around an event's block a neighbour may lie (NetBSD's hitmlog uses 0x7f).</summary>
    private const nuint Neighbourhood = 0x7F;

    [StructLayout(LayoutKind.Sequential)]
    private struct Entry
    {
        public nuint AddressComplement;
        public nuint Size;
        public uint Site;
        public ushort TypeIndex;
        public byte Operation;
    }

    private static readonly object s_lock = new();
    private static Entry* s_ring;
    private static int s_capacity = KmemOptions.ParseInt(Environment.GetEnvironmentVariable("KMEM_MALLOCLOG"), 100_000, 0, MaxCapacity);
    private static long s_next;

    public static int Capacity => Volatile.Read(ref s_capacity);

    public static void Resize(int capacity)
    {
        lock (s_lock)
        {
            if (s_ring != null)
            {
                Pages.OwnRegions.Remove(s_ring, (nuint)(s_capacity * sizeof(Entry)));
                NativeMemory.Free(s_ring);
                s_ring = null;
            }
            s_capacity = capacity;
            s_next = 0;
        }
    }

    public static void Record(byte operation, void* p, nuint size, int typeIndex, uint site)
    {
        if (Volatile.Read(ref s_capacity) == 0)
            return;
        lock (s_lock)
        {
            if (s_capacity == 0)
                return;
            if (s_ring == null)
            {
                nuint bytes = (nuint)(s_capacity * sizeof(Entry));
                s_ring = (Entry*)NativeMemory.AllocZeroed(bytes);
                Pages.OwnRegions.Add(s_ring, bytes);
            }
            s_ring[s_next++ % s_capacity] = new Entry
            {
                AddressComplement = ~(nuint)p, Size = size, Site = site, TypeIndex = (ushort)typeIndex, Operation = operation,
            };
        }
    }

    /// <summary>Whether any word of the log's memory equals <paramref name="value"/> (tests: the log holds no address).</summary>
    internal static bool HoldsWord(nuint value)
    {
        lock (s_lock)
            return s_ring != null && new ReadOnlySpan<nuint>(s_ring, s_capacity * sizeof(Entry) / sizeof(nuint)).Contains(value);
    }

    /// <summary>The logged events of <paramref name="p"/> and its neighbours, oldest first, as printable lines; null if none.</summary>
    public static string? Describe(void* p)
    {
        var sb = new StringBuilder();
        lock (s_lock)
        {
            if (s_ring == null)
                return null;
            long first = Math.Max(0, s_next - s_capacity);
            for (long i = first; i < s_next; i++)
            {
                Entry e = s_ring[i % s_capacity];
                nuint start = ~e.AddressComplement;
                nuint at = (nuint)p;
                if (at + Neighbourhood < start || at > start + e.Size + Neighbourhood)
                    continue;
                string type = Types.TypeRegistry.ByIndex(e.TypeIndex)?.ShortDesc ?? "?";
                sb.Append($"\n  {(e.Operation == Alloc ? "malloc" : "free")} 0x{start:x} size {e.Size} type {type} at {CallSites.Describe(e.Site)}");
            }
        }
        return sb.Length == 0 ? null : "MALLOCLOG for " + Panic.Addr(p) + ":" + sb;
    }
}

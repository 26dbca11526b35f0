// Leak/LeakTracking.cs — what allocators call to tell the detector about objects (kmemleak_alloc/free from inside the
// allocators), the records of non-slab objects, and the birth clock (per-thread sequence numbers, with each scan's
// per-thread watermarks giving a conservative birth time).
using System.Diagnostics.CodeAnalysis;
using Kmem.Caches;
using Kmem.Pages;

namespace Kmem.Leak;

internal static unsafe class LeakTracking
{
    /// <summary>Whether objects are being tracked; cleared for good by <c>off</c> or <c>KMEMLEAK=off</c>.</summary>
    public static volatile bool Enabled = !string.Equals(Environment.GetEnvironmentVariable("KMEMLEAK"), "off", StringComparison.OrdinalIgnoreCase);

    /// <summary>Whether each allocation records its managed stack (<c>trace=on</c>). Kept here, beside
    /// <see cref="Enabled"/>, so the allocation fast path reads only this class's statics.</summary>
    public static volatile bool Trace;

    public static readonly object Lock = new();
    private static readonly Dictionary<nuint, LeakRecord> s_kmemRecords = new();   // by kmem_map offset
    private static readonly Dictionary<nuint, LeakRecord> s_foreign = new();       // by ~address
    private static readonly Dictionary<nuint, LeakRecord> s_phys = new();          // by ~physical address

    public static IEnumerable<LeakRecord> KmemRecords => s_kmemRecords.Values;
    public static IEnumerable<LeakRecord> ForeignRecords => s_foreign.Values;
    public static IEnumerable<LeakRecord> PhysRecords => s_phys.Values;

    /// <summary>Whether [start, end) overlaps one of <paramref name="records"/> (foreign or physical: keys are ~start). A
    /// plain loop: a lambda would keep the raw bounds in a closure on the GC heap, where the leak scan could meet them.</summary>
    public static bool OverlapsAny(IEnumerable<LeakRecord> records, nuint start, nuint end)
    {
        foreach (LeakRecord r in records)
            if (start < ~r.Key + r.Size && end > ~r.Key)
                return true;
        return false;
    }

    /// <summary>The next birth stamp of the calling thread.</summary>
    public static (uint Thread, uint Stamp) Birth(byte* tc)
    {
        ThreadHeader* h = ThreadCaches.Header(tc);
        return (h->Ordinal, ++h->Sequence);
    }

    public static nuint OffsetOf(void* p) => (nuint)((byte*)p - KmemMap.Base);

    /// <summary>Registers a large block, vmalloc area or per-CPU object (called by its allocator).</summary>
    public static void AddKmem(RecordKind kind, void* start, nuint size, int minCount, ushort typeIndex, uint context)
    {
        if (!Enabled)
            return;
        (uint thread, uint stamp) = Birth(ThreadCaches.Current());
        var r = new LeakRecord { Kind = kind, Key = OffsetOf(start), Size = size, MinCount = minCount, TypeIndex = typeIndex, Context = context, Thread = thread, Stamp = stamp };
        lock (Lock)
        {
            s_kmemRecords[r.Key] = r;
        }
        if (Trace)
            Kmemleak.RecordTrace(start, stamp);
    }

    public static void RemoveKmem(void* start)
    {
        lock (Lock)
            s_kmemRecords.Remove(OffsetOf(start));
    }

    /// <summary>Copies of the kmem_map records and of the guard-page records (foreign records of Kmem blocks), for the
    /// heap verifier.</summary>
    public static (LeakRecord[] Kmem, LeakRecord[] Guarded) SnapshotForVerify()
    {
        lock (Lock)
            return (s_kmemRecords.Values.ToArray(), s_foreign.Values.Where(r => r.Guarded).ToArray());
    }

    public static bool TryGetKmem(nuint offset, [NotNullWhen(true)] out LeakRecord? r)
    {
        lock (Lock)
            return s_kmemRecords.TryGetValue(offset, out r);
    }

    // The table a record of this kind lives in (Large, Vmalloc and PerCpu share the kmem_map table).
    private static Dictionary<nuint, LeakRecord> TableOf(RecordKind kind) =>
        kind switch { RecordKind.Foreign => s_foreign, RecordKind.Phys => s_phys, _ => s_kmemRecords };

    /// <summary>Whether <paramref name="r"/> is still registered (its object not freed meanwhile).</summary>
    public static bool IsRegistered(LeakRecord r)
    {
        lock (Lock)
            return TableOf(r.Kind).TryGetValue(r.Key, out LeakRecord? live) && live == r;
    }

    /// <summary>Registers a foreign or physical record (Kmem's own objects go through <see cref="AddKmem"/>).</summary>
    public static void Add(LeakRecord r)
    {
        lock (Lock)
        {
            TableOf(r.Kind)[r.Key] = r;
        }
    }

    public static bool Remove(RecordKind kind, nuint key, [NotNullWhen(true)] out LeakRecord? r)
    {
        lock (Lock)
            return TableOf(kind).Remove(key, out r);
    }

    /// <summary>Finds the foreign record containing <paramref name="p"/> (interior allowed), under <see cref="Lock"/>.</summary>
    public static LeakRecord? ForeignContaining(nuint p)
    {
        foreach (LeakRecord r in s_foreign.Values)
        {
            nuint start = ~r.Key;
            if (p >= start && p - start < r.Size)
                return r;
        }
        return null;
    }

    /// <summary>Finds the phys record containing <paramref name="phys"/> (interior allowed), under <see cref="Lock"/>.</summary>
    public static LeakRecord? PhysContaining(ulong phys)
    {
        foreach (LeakRecord r in s_phys.Values)
            if (phys >= (ulong)~r.Key && phys - (ulong)~r.Key < (ulong)r.Size)
                return r;
        return null;
    }

    /// <summary>Forgets every record (clear while disabled).</summary>
    public static void DropAll()
    {
        lock (Lock)
        {
            s_kmemRecords.Clear();
            s_foreign.Clear();
            s_phys.Clear();
        }
    }
}

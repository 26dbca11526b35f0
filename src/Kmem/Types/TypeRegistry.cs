// Types/TypeRegistry.cs — every malloc type ever defined (by index) and the attached list (kmemstatistics);
// attach/detach rules and folding a dead thread's type slots into the types.
using Kmem.Caches;
using Kmem.Diagnostics;
using Kmem.Platform;

namespace Kmem.Types;

internal static unsafe class TypeRegistry
{
    private static readonly object s_lock = new();
    private static readonly MallocType?[] s_byIndex = new MallocType?[ThreadCaches.MaxTypes];
    private static readonly List<MallocType> s_attached = new();
    private static int s_count = 1; // index 0 means "no type" in the side tables

    /// <summary>The limit a type gets when none is given: 60% of the machine's memory, as NetBSD gave 60% of kmem_map.</summary>
    public static readonly ulong DefaultLimit = OsPages.PhysicalMemory / 10 * 6;

    public static int Count => Volatile.Read(ref s_count);

    public static MallocType? ByIndex(int index) => (uint)index < (uint)s_byIndex.Length ? s_byIndex[index] : null;

    public static int Register(MallocType type)
    {
        int index;
        lock (s_lock)
        {
            if (s_count >= s_byIndex.Length)
                throw new InvalidOperationException($"Kmem supports at most {s_byIndex.Length - 1} malloc types in one process.");
            index = s_count;
            s_byIndex[index] = type;
            Volatile.Write(ref s_count, index + 1);
        }
        // Outside the lock (an EventSource's creation calls listeners, which may make types): once per process.
        Telemetry.KmemMetrics.EnsureCreated();
        Telemetry.KmemEventSource.EnsureCreated(); // a tool's session reaches the source only once it exists
        return index;
    }

    /// <summary>Every type ever registered, attached or not (index 0 is no type).</summary>
    public static MallocType[] RegisteredSnapshot()
    {
        lock (s_lock)
            return s_byIndex.AsSpan(0, s_count).ToArray().Where(t => t is not null).ToArray()!;
    }

    public static void Attach(MallocType type)
    {
        lock (s_lock)
        {
            if (type.State == MallocType.Attached)
                Panic.Raise($"malloc_type_attach: '{type.ShortDesc}' already on list");
            s_attached.Add(type);
            type.State = MallocType.Attached;
        }
        Checks.CheckSwitch.Refresh(type);
    }

    public static void Detach(MallocType type)
    {
        MallocTypeStats stats;
        lock (s_lock)
        {
            if (type.State != MallocType.Attached)
                Panic.Raise($"malloc_type_detach: '{type.ShortDesc}' not on list");
            type.State = MallocType.Detached;
            s_attached.Remove(type);
            stats = TypeStatistics.Fold(type);
        }
        Checks.CheckSwitch.Refresh(type);
        if (stats.InUse != 0)
        {
            KmemDiagnostics.Publish(KmemMessageKind.Warning,
                $"Warning: memory type {type.ShortDesc} leaked memory on destroy ({stats.InUse} allocations, {stats.MemUse} bytes leaked).");
            Telemetry.KmemTelemetry.TypeLeakedOnDestroy(type.ShortDesc, stats.InUse, stats.MemUse);
        }
    }

    /// <summary>The attached types in attach order.</summary>
    public static MallocType[] AttachedSnapshot()
    {
        lock (s_lock)
            return s_attached.ToArray();
    }

    /// <summary>
    /// Folds a dead thread's slots into the types. The caller holds <see cref="ThreadCaches.Lock"/>; the returned credits
    /// must be given back (<see cref="TypeAccounting.Uncharge"/>) after that lock is released.
    /// </summary>
    public static List<(MallocType Type, long Credit)> RetireSlots(byte* tc)
    {
        var credits = new List<(MallocType, long)>();
        int count = Count;
        for (int i = 1; i < count; i++)
        {
            TypeSlot* slot = ThreadCaches.Slot(tc, i);
            if (slot->Allocs == 0 && slot->Frees == 0 && slot->Credit == 0)
                continue;
            MallocType t = s_byIndex[i]!;
            t.RetiredAllocs += slot->Allocs;
            t.RetiredFrees += slot->Frees;
            t.RetiredNet += slot->Net;
            // The credit goes back to the type's limit below; Charged leaves with the slot.
            t.RetiredSizes |= slot->Sizes;
            if (Volatile.Read(ref t.Chunk) != 0) // exactly accounted types keep an exact HighUse of their own
                TypeAccounting.RaiseHighUse(t, t.LastFoldTotal + Math.Max(0, slot->Peak - slot->NetAtFold));
            t.LastFoldTotal += slot->Net - slot->NetAtFold;
            if (slot->Credit != 0)
                credits.Add((t, slot->Credit));
        }
        return credits;
    }
}

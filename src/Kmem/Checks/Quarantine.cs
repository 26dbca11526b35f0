// Checks/Quarantine.cs — the FIFO freed DIAGNOSTIC blocks wait in, poisoned, before they can be reused (NetBSD appends
// frees at the tail of a bucket's list for the same reason): the longer a block waits, the wider the window in which a
// write through a stale pointer is caught. Entries hold free-list links (kmem_map offsets), never addresses, in native
// memory the leak scan excludes.
using System.Runtime.InteropServices;
using Kmem.Slabs;

namespace Kmem.Checks;

/// <summary>One quarantined block: its link, the bytes poisoned, the type that freed it, its class.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct QuarantineEntry
{
    public nuint Link;
    public uint PoisonBytes;
    public ushort TypeIndex;
    public byte Class;
}

internal static unsafe class Quarantine
{
    public const int MaxCapacity = 1 << 20;
    private static readonly object s_lock = new();
    private static QuarantineEntry* s_ring;
    private static int s_ringSize;
    private static long s_head, s_tail; // entries [head, tail) are queued
    private static int s_capacity = KmemOptions.ParseInt(Environment.GetEnvironmentVariable("KMEM_QUARANTINE"), 1024, 1, MaxCapacity);
    private static readonly long[] s_perClass = new long[SizeClasses.Count];

    public static int Capacity => Volatile.Read(ref s_capacity);

    public static int Count
    {
        get { lock (s_lock) return (int)(s_tail - s_head); }
    }

    /// <summary>Blocks of a class waiting here (vmstat counts them as free).</summary>
    public static long CountOf(int cls) => Volatile.Read(ref s_perClass[cls]);

    /// <summary>Runs <paramref name="visit"/> on every waiting entry, oldest first, with the quarantine locked (no entry
    /// can leave meanwhile).</summary>
    public static void ForEach(Action<QuarantineEntry> visit)
    {
        lock (s_lock)
            for (long i = s_head; i < s_tail; i++)
                visit(s_ring[i % s_ringSize]);
    }

    /// <summary>Whether any word of the quarantine's memory equals <paramref name="value"/> (tests: it holds no address).</summary>
    internal static bool HoldsWord(nuint value)
    {
        lock (s_lock)
            return s_ring != null && new ReadOnlySpan<nuint>(s_ring, s_ringSize * sizeof(QuarantineEntry) / sizeof(nuint)).Contains(value);
    }

    public static void Resize(int capacity)
    {
        lock (s_lock)
            s_capacity = capacity;
    }

    /// <summary>Queues a freed block. When the quarantine is over capacity the oldest entry comes out in
    /// <paramref name="evicted"/> (true returned): the caller checks its poison and releases it.</summary>
    public static bool Push(QuarantineEntry entry, out QuarantineEntry evicted)
    {
        lock (s_lock)
        {
            if (s_tail - s_head >= s_ringSize)
                Grow();
            s_ring[s_tail++ % s_ringSize] = entry;
            s_perClass[entry.Class]++;
            return TakeOldestOver(s_capacity, out evicted);
        }
    }

    /// <summary>Takes the oldest entry while more than <paramref name="keep"/> wait (draining: keep 0).</summary>
    public static bool TryTakeOldest(int keep, out QuarantineEntry evicted)
    {
        lock (s_lock)
            return TakeOldestOver(keep, out evicted);
    }

    private static bool TakeOldestOver(int keep, out QuarantineEntry evicted)
    {
        if (s_tail - s_head <= keep)
        {
            evicted = default;
            return false;
        }
        evicted = s_ring[s_head++ % s_ringSize];
        s_perClass[evicted.Class]--;
        return true;
    }

    private static void Grow()
    {
        int size = Math.Max(256, s_ringSize * 2);
        nuint bytes = (nuint)(size * sizeof(QuarantineEntry));
        var ring = (QuarantineEntry*)NativeMemory.Alloc(bytes);
        Pages.OwnRegions.Add(ring, bytes);
        long n = s_tail - s_head;
        for (long i = 0; i < n; i++)
            ring[i] = s_ring[(s_head + i) % s_ringSize];
        if (s_ring != null)
        {
            Pages.OwnRegions.Remove(s_ring, (nuint)(s_ringSize * sizeof(QuarantineEntry)));
            NativeMemory.Free(s_ring);
        }
        s_ring = ring;
        s_ringSize = size;
        s_head = 0;
        s_tail = n;
    }
}

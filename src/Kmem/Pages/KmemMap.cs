// Pages/KmemMap.cs — kmem_map: one contiguous reservation of address space holding every Kmem block, carved into
// 256 KiB units. Owns the unit allocator (slabs take one unit, large blocks a run) and committing/decommitting pages.
using Kmem.Diagnostics;
using Kmem.Platform;

namespace Kmem.Pages;

internal static unsafe class KmemMap
{
    public const int UnitShift = 18;
    public const nuint UnitSize = (nuint)1 << UnitShift;
    public const nuint UnitMask = UnitSize - 1;
    public const int ChunkShift = 26;
    public const ulong ChunkSize = 1UL << ChunkShift;
    public const int UnitsPerChunk = 1 << (ChunkShift - UnitShift);

    private static readonly object s_lock = new();
    private static volatile bool s_started;
    private static IPageProvider s_pages = null!;

    /// <summary>First byte of kmem_map.</summary>
    public static byte* Base;
    /// <summary>Size of kmem_map in bytes: the configured size (a multiple of <see cref="ChunkSize"/>) plus unit 0.</summary>
    public static nuint Size;
    public static uint UnitCount;
    public static int PageSize;

    // Unit allocator (guarded by s_lock): free runs of unit numbers, first fit, so the map fills from its start.
    private static FreeRuns s_runs = new(0);
    // Freed runs wait here, first in first out, before they can be handed out again (NetBSD appends freed items at the
    // tail for the same reason): a second free of a large block or vmalloc area finds its units still Released and
    // panics, instead of freeing whatever reused them. Flushed at once when the map would otherwise be full.
    private const int DelayedRuns = 32;
    private static readonly Queue<(uint Unit, uint Count)> s_delayed = new();
    private static long s_committedBytes;

    /// <summary>Held while pages are returned to the OS, and by the leak scanner while it reads a block that could be
    /// returned (large blocks, vmalloc areas, physical mappings), so a scan never reads unmapped memory.</summary>
    public static readonly object UnmapGate = new();

    public static bool IsStarted => s_started;
    public static long CommittedBytes => Volatile.Read(ref s_committedBytes);

    /// <summary>Maps kmem_map and the side tables on first use. Thread-safe; cheap after the first call.</summary>
    public static void EnsureStarted()
    {
        if (s_started)
            return;
        lock (s_lock)
        {
            if (s_started)
                return;
            Start();
            s_started = true;
        }
    }

    private static void Start()
    {
        // NetBSD checks at kmeminit that a free block can hold the free-list overlay; ours is two links (16 bytes).
        if ((1 << KmemOptions.MinBucketShift) < Slabs.BlockLink.OverlayBytes)
            Diagnostics.Panic.Raise("init: minbucket too small/struct freelist too big");
        s_pages = OsPages.Provider;
        PageSize = s_pages.PageSize;
        ulong want = KmemOptions.KmemMapSize != 0 ? KmemOptions.KmemMapSize : OsPages.PhysicalMemory;
        want = (want + ChunkSize - 1) & ~(ChunkSize - 1);
        // Address-space limits (ulimit -v) may refuse a large reservation: halve until it fits, but say so.
        ulong size = want;
        nint p = 0;
        while (size >= ChunkSize && (p = s_pages.Reserve((nuint)size + UnitSize)) == 0)
            size /= 2;
        if (p == 0)
            throw new OutOfMemoryException("Kmem: the OS refused to reserve address space for kmem_map.");
        if (size != want)
            KmemDiagnostics.Publish(KmemMessageKind.Warning, $"kmem_map reduced to {size >> 20} MiB (the OS refused {want >> 20} MiB of address space)");
        Base = (byte*)p;
        Size = (nuint)size + UnitSize;
        UnitCount = (uint)(Size >> UnitShift);
        OwnRegions.Add(Base, Size);
        // Unit 0 (beyond the configured size) never holds a block: Base itself, in a static field the process-root scan
        // reads, points at no object.
        s_runs = new FreeRuns(UnitCount);
        _ = s_runs.Take(1);
        PageMap.Start(UnitCount, s_pages);
        Slabs.SlabMeta.Start(UnitCount, s_pages);
    }

    public static bool Contains(void* p) => (nuint)((byte*)p - Base) < Size;

    public static byte* UnitAddress(uint unit) => Base + ((nuint)unit << UnitShift);

    public static uint UnitOf(void* p) => (uint)((nuint)((byte*)p - Base) >> UnitShift);

    /// <summary>
    /// Takes <paramref name="count"/> contiguous units and commits <paramref name="commitBytes"/> of them from
    /// <paramref name="commitOffset"/> on (what lies outside stays inaccessible: guard pages).
    /// Returns the first unit, or -1 when kmem_map is full or the OS refuses the pages.
    /// </summary>
    public static long AllocUnits(uint count, nuint commitBytes, nuint commitOffset = 0)
    {
        long unit;
        lock (s_lock)
        {
            unit = s_runs.Take(count);
            if (unit < 0 && s_delayed.Count > 0)
            {
                while (s_delayed.TryDequeue(out (uint Unit, uint Count) run))
                    s_runs.Put(run.Unit, run.Count);
                unit = s_runs.Take(count);
            }
            if (unit < 0)
                return -1;
        }
        if (!PageMap.EnsureTables((uint)unit, count) || FaultInjection.FailPageRequest()
            || !s_pages.Commit((nint)(UnitAddress((uint)unit) + commitOffset), commitBytes))
        {
            lock (s_lock)
                s_runs.Put((uint)unit, count);
            return -1;
        }
        Interlocked.Add(ref s_committedBytes, (long)commitBytes);
        return unit;
    }

    /// <summary>Returns a run of units: its pages go back to the OS at once, the address space to the free runs.</summary>
    public static void FreeUnits(uint unit, uint count, nuint committedBytes, nuint commitOffset = 0)
    {
        lock (UnmapGate)
            s_pages.Decommit((nint)(UnitAddress(unit) + commitOffset), committedBytes);
        Interlocked.Add(ref s_committedBytes, -(long)committedBytes);
        lock (s_lock)
        {
            s_delayed.Enqueue((unit, count));
            if (s_delayed.Count > DelayedRuns)
            {
                (uint oldest, uint oldestCount) = s_delayed.Dequeue();
                s_runs.Put(oldest, oldestCount);
            }
        }
    }
}

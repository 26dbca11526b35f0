// KmemOptions.cs — process-wide settings: panic policy, the size of kmem_map, the smallest bucket and DIAGNOSTIC mode
// (poisoning, redzones, quarantine, guard pages, the allocation log), failure injection. Read from the environment at start.
using Kmem.Checks;
using Kmem.Pages;

namespace Kmem;

/// <summary>What a panic does.</summary>
public enum PanicMode
{
    /// <summary>Throw <see cref="KmemPanicException"/> (the default).</summary>
    Throw,
    /// <summary>End the process with <see cref="Environment.FailFast(string)"/> and the panic message.</summary>
    FailFast,
}

/// <summary>How much of a freed block DIAGNOSTIC mode fills with the 0xdeadbeef pattern.</summary>
public enum PoisonExtent
{
    /// <summary>The first 32 bytes (NetBSD's default: cheap, catches most writes through stale pointers).</summary>
    FirstWords,
    /// <summary>The whole block (NetBSD's <c>options DEBUG</c>): every write after free is caught.</summary>
    Full,
}

/// <summary>
/// Process-wide Kmem settings. Environment variables give the starting values: <c>KMEM_PANIC=failfast|throw</c>,
/// <c>KMEM_MAP_SIZE=&lt;bytes&gt;[K|M|G]</c>, <c>KMEM_MINBUCKET=&lt;shift&gt;</c>, and for DIAGNOSTIC mode
/// <c>KMEM_DIAGNOSTIC=1|full|0</c>, <c>KMEM_REDZONES=0|1</c>, <c>KMEM_QUARANTINE=&lt;blocks&gt;</c>,
/// <c>KMEM_MALLOCLOG=&lt;entries&gt;</c> and <c>KMEM_GUARD=&lt;type&gt;|*[:&lt;min&gt;-&lt;max&gt;]</c>; failure injection
/// <c>KMEM_FAIL_NOWAIT=&lt;n&gt;</c> and <c>KMEM_FAIL_PAGES=&lt;n&gt;</c>.
/// </summary>
public static class KmemOptions
{
    private static PanicMode s_panic = ParsePanic(Environment.GetEnvironmentVariable("KMEM_PANIC"));
    private static ulong s_mapSize = ParseSize(Environment.GetEnvironmentVariable("KMEM_MAP_SIZE"));
    private static int s_minBucket = ParseMinBucket(Environment.GetEnvironmentVariable("KMEM_MINBUCKET"));

    /// <summary>log2 of the smallest bucket Kmem's size classes start at (NetBSD's MINBUCKET).</summary>
    public const int SizeClassesMinShift = 4;

    /// <summary>The largest <see cref="MinBucketShift"/>: the smallest bucket is then the largest small class (32 KiB).</summary>
    public const int MaxMinBucketShift = 15;

    /// <summary>
    /// log2 of the smallest bucket (NetBSD's MINBUCKET, default 4: 16 bytes): requests below it get a block of
    /// 1 &lt;&lt; MinBucketShift bytes. Checked when Kmem starts: a bucket too small to hold a free block's links
    /// (16 bytes) panics "init: minbucket too small/struct freelist too big". Can be set only before the first allocation.
    /// </summary>
    public static int MinBucketShift
    {
        get => s_minBucket;
        set
        {
            if (KmemMap.IsStarted)
                throw new InvalidOperationException("MinBucketShift must be set before the first allocation; kmem_map is already mapped.");
            if (value is < 0 or > MaxMinBucketShift)
                throw new ArgumentOutOfRangeException(nameof(value), value, $"MinBucketShift must be 0 to {MaxMinBucketShift}.");
            s_minBucket = value;
            Slabs.SizeClasses.ApplyMinBucket(value); // Roundup answers the same before and after the first allocation
        }
    }

    /// <summary>
    /// DIAGNOSTIC mode for every malloc type (<c>KMEM_DIAGNOSTIC=1</c>); <see cref="MallocType.Diagnostic"/> turns it on
    /// for one type. Freed blocks are poisoned and wait in a quarantine, redzones surround each block, and every call
    /// is logged. Takes effect at once for new calls; blocks allocated before keep the layout they were given.
    /// </summary>
    public static bool Diagnostic
    {
        get => CheckSwitch.Global;
        set
        {
            CheckSwitch.SetGlobal(value);
            if (!value)
                Heap.DrainQuarantineIfIdle();
        }
    }

    /// <summary>How much of a freed block DIAGNOSTIC mode poisons (<c>KMEM_DIAGNOSTIC=full</c> for the whole block).</summary>
    public static PoisonExtent DiagnosticPoison
    {
        get => CheckSwitch.Poison;
        set
        {
            if (value is not (PoisonExtent.FirstWords or PoisonExtent.Full))
                throw new ArgumentOutOfRangeException(nameof(value), value, "unknown poison extent");
            CheckSwitch.Poison = value;
        }
    }

    /// <summary>Whether DIAGNOSTIC allocations get redzones (default true; <c>KMEM_REDZONES=0</c> turns them off).</summary>
    public static bool DiagnosticRedzones
    {
        get => CheckSwitch.Redzones;
        set => CheckSwitch.Redzones = value;
    }

    /// <summary>How many freed blocks wait, poisoned, before they can be reused (default 1024; 1 to 1,048,576).</summary>
    public static int QuarantineBlocks
    {
        get => Quarantine.Capacity;
        set
        {
            if (value is < 1 or > Quarantine.MaxCapacity)
                throw new ArgumentOutOfRangeException(nameof(value), value, $"QuarantineBlocks must be 1 to {Quarantine.MaxCapacity}.");
            Quarantine.Resize(value);
            Heap.TrimQuarantine(value);
        }
    }

    /// <summary>Entries in the allocation log (MALLOCLOG) of DIAGNOSTIC calls (default 100,000; 0 turns it off).
    /// Changing it starts an empty log.</summary>
    public static int MallocLogEntries
    {
        get => MallocLog.Capacity;
        set
        {
            if (value is < 0 or > MallocLog.MaxCapacity)
                throw new ArgumentOutOfRangeException(nameof(value), value, $"MallocLogEntries must be 0 to {MallocLog.MaxCapacity}.");
            MallocLog.Resize(value);
        }
    }

    /// <summary>
    /// Guard-page mode (MALLOC_DEBUG, memguard(9)) for allocations of <paramref name="type"/> (null: any type) whose
    /// size is in [<paramref name="minSize"/>, <paramref name="maxSize"/>]: each block ends at the end of its own pages
    /// with an inaccessible page after it, and free makes its pages inaccessible and delays their reuse, so an overflow
    /// or a use after free faults at once. Sizes above <see cref="GuardPageMaxSize"/> keep the normal allocator.
    /// </summary>
    public static void SetGuardPages(MallocType? type, nuint minSize = 1, nuint maxSize = GuardPages.MaxBlockSize)
    {
        if (minSize == 0 || minSize > maxSize)
            throw new ArgumentOutOfRangeException(nameof(minSize), minSize, "the guarded size range must be non-empty and start at 1 or more");
        if (maxSize > GuardPages.MaxBlockSize)
            throw new ArgumentOutOfRangeException(nameof(maxSize), maxSize, $"guard pages serve blocks of at most {GuardPages.MaxBlockSize} bytes");
        CheckSwitch.SetGuard(type?.ShortDesc, type is null, minSize, maxSize);
    }

    /// <summary>Ends guard-page mode for new allocations; guarded blocks still live are freed as before.</summary>
    public static void ClearGuardPages() => CheckSwitch.ClearGuard();

    /// <summary>The largest block guard-page mode serves.</summary>
    public static nuint GuardPageMaxSize => GuardPages.MaxBlockSize;

    /// <summary>
    /// Failure injection (FreeBSD's MALLOC_MAKE_FAILURES, <c>KMEM_FAIL_NOWAIT=N</c>): every N-th NoWait malloc (any type
    /// but Kmem's own) returns null, as if the type were at its limit; 0 turns it off. While on, every malloc takes the
    /// checked path (where the count is kept); while off, the fast path pays nothing. Setting it restarts the count.
    /// </summary>
    public static int FailNoWaitEvery
    {
        get => FaultInjection.NoWaitEvery;
        set
        {
            if (value < 0)
                throw new ArgumentOutOfRangeException(nameof(FailNoWaitEvery), value, "FailNoWaitEvery must be 0 (off) or n > 0 (every n-th NoWait malloc fails)");
            CheckSwitch.SetFailNoWait(value);
        }
    }

    /// <summary>
    /// Failure injection for the OS (<c>KMEM_FAIL_PAGES=N</c>): every N-th page request (slabs and their side tables,
    /// large blocks, per-CPU chunks, vmalloc areas, page-map tables, guard pages, thread caches, the leak scan's
    /// buffers) is refused; 0 turns it off. A NoWait or CanFail malloc then returns null, Vmalloc returns null, guard
    /// pages fall back to a normal block; a WaitOk malloc, AllocPercpu and Kmem's own metadata retry once with the
    /// injection suspended for the retrying thread (an injected refusal is transient, as a kernel's M_WAITOK waits for
    /// pages), so they never fail from it, even with N = 1. Setting it restarts the count.
    /// </summary>
    public static int FailPageRequestsEvery
    {
        get => FaultInjection.PagesEvery;
        set
        {
            if (value < 0)
                throw new ArgumentOutOfRangeException(nameof(FailPageRequestsEvery), value, "FailPageRequestsEvery must be 0 (off) or n > 0 (every n-th page request is refused)");
            FaultInjection.SetPagesEvery(value);
        }
    }

    /// <summary>NoWait mallocs failed by <see cref="FailNoWaitEvery"/> so far (FreeBSD's <c>malloc_failure_count</c>).</summary>
    public static long InjectedNoWaitFailures => FaultInjection.NoWaitInjected;

    /// <summary>Page requests refused by <see cref="FailPageRequestsEvery"/> so far.</summary>
    public static long InjectedPageFailures => FaultInjection.PagesInjected;

    /// <summary>What a panic does; may be changed at any time.</summary>
    public static PanicMode Panic
    {
        get => s_panic;
        set
        {
            if (value is not (PanicMode.Throw or PanicMode.FailFast))
                throw new ArgumentOutOfRangeException(nameof(value), value, "unknown panic mode");
            s_panic = value;
        }
    }

    /// <summary>
    /// The ceiling of the whole heap (NetBSD's kmem_map), in bytes; 0 = the machine's memory. Rounded up to 64 MiB.
    /// Can be set only before the first allocation; afterwards the setter throws <see cref="InvalidOperationException"/>.
    /// </summary>
    public static ulong KmemMapSize
    {
        get => s_mapSize;
        set
        {
            if (KmemMap.IsStarted)
                throw new InvalidOperationException("KmemMapSize must be set before the first allocation; kmem_map is already mapped.");
            if (value != 0 && value < KmemMap.ChunkSize)
                throw new ArgumentOutOfRangeException(nameof(value), value, $"kmem_map must be at least {KmemMap.ChunkSize} bytes (or 0 for the machine's memory).");
            s_mapSize = value;
        }
    }

    internal static PanicMode ParsePanic(string? text) => text?.Trim().ToLowerInvariant() switch
    {
        "failfast" or "fail-fast" or "abort" => PanicMode.FailFast,
        _ => PanicMode.Throw,
    };

    // KMEM_MINBUCKET: 0 to 15 (below 4 is accepted here and refused when Kmem starts, with the kernel's panic); anything
    // else is reported and the default kept.
    private static int ParseMinBucket(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
            return SizeClassesMinShift;
        int shift = ParseInt(text, -1, 0, MaxMinBucketShift);
        if (shift >= 0)
            return shift;
        KmemDiagnostics.Publish(KmemMessageKind.Warning, $"KMEM_MINBUCKET={text.Trim()} ignored: it must be 0 to {MaxMinBucketShift}; the smallest bucket stays 16 bytes");
        return SizeClassesMinShift;
    }

    internal static int ParseInt(string? text, int fallback, int min, int max) =>
        int.TryParse(text?.Trim(), out int n) && n >= min && n <= max ? n : fallback;

    internal static ulong ParseSize(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
            return 0;
        text = text.Trim();
        ulong scale = char.ToUpperInvariant(text[^1]) switch { 'K' => 1UL << 10, 'M' => 1UL << 20, 'G' => 1UL << 30, _ => 1 };
        if (scale != 1)
            text = text[..^1];
        return ulong.TryParse(text, out ulong n) && n <= ulong.MaxValue / scale ? n * scale : 0;
    }
}

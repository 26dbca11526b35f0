// Types/MallocType.cs — struct malloc_type: a named kind of memory with its statistics and limit
// (MALLOC_DEFINE_LIMIT / MALLOC_JUSTDEFINE_LIMIT, malloc_type_attach/detach/setlimit).
using Kmem.Diagnostics;
using Kmem.Types;

namespace Kmem;

/// <summary>
/// A malloc type: every block is allocated under one, and the type keeps its statistics and enforces its limit.
/// <c>new MallocType("name")</c> is MALLOC_DEFINE (attached at once); <c>attach: false</c> is MALLOC_JUSTDEFINE_LIMIT
/// (usable only after <see cref="Attach"/>). A limit of 0 means the default: 60% of the machine's memory.
/// </summary>
public sealed class MallocType
{
    /// <summary>M_DEVBUF: device driver memory.</summary>
    public static MallocType DevBuf { get; } = new("devbuf", "Device driver memory");
    /// <summary>M_DMAMAP: bus_dma(9) structures.</summary>
    public static MallocType DmaMap { get; } = new("DMA map", "bus_dma(9) structures");
    /// <summary>M_FREE: should be on free list.</summary>
    public static MallocType Free { get; } = new("free", "Should be on free list");
    /// <summary>M_PCB: protocol control block.</summary>
    public static MallocType Pcb { get; } = new("pcb", "Protocol control block");
    /// <summary>M_SOFTINTR: softinterrupt structures.</summary>
    public static MallocType SoftIntr { get; } = new("softintr", "Softinterrupt structures");
    /// <summary>M_TEMP: misc temporary data buffers.</summary>
    public static MallocType Temp { get; } = new("temp", "Misc temporary data buffers");

    internal const int NeverAttached = 0, Attached = 1, Detached = 2;

    /// <summary>M_MAGIC, as NetBSD's ks_magic: DIAGNOSTIC mode refuses a type whose magic is not this.</summary>
    internal const int MagicValue = 877983977;

    internal readonly int Index;
    internal volatile int State;
    internal int Magic = MagicValue;
    internal volatile bool DiagnosticOn;
    /// <summary>One of Kmem's own types (vmalloc descriptors): never chosen for guard pages by a type-less selection.</summary>
    internal bool Internal;

    // What the fast paths read instead of State (kept by Checks.CheckSwitch.Refresh): Malloc's fast path runs only while
    // AllocGate is 0 (attached, no check applies); Free's fast path matches a block's owner entry against FreeKey, the
    // type's index while no DIAGNOSTIC check applies and −1 (never an owner) otherwise. No extra test on either path.
    internal volatile int AllocGate = 1;
    internal volatile int FreeKey = -1;

    // Limit accounting: ChargedBytes is every byte charged against the limit, including credit that threads hold
    // ahead of use (Chunk bytes at most per thread; 0 = exact, every allocation charged at once).
    internal ref long ChargedBytes => ref _charged.Value;
    internal long LimitBytes;
    internal long Chunk;
    internal bool ExplicitLimit;
    internal volatile bool StaleCredit;
    internal long HighUseBytes;
    internal long LimitBlockCount;
    internal readonly object WaitLock = new();
    internal int Waiters;

    // The one field every thread writes (a CAS per chunk of credit) sits on a cache line of its own: beside the fields
    // the fast paths read on every call (Index, AllocGate, FreeKey, Chunk, Waiters) it made two threads working under one
    // type slow each other down. A cache line of padding on each side keeps it apart wherever the runtime places it.
    private PaddedLong _charged;

    // Counts of threads that ended, and the fold state (guarded by ThreadCaches.Lock).
    internal long RetiredAllocs, RetiredFrees, RetiredNet;
    internal ulong RetiredSizes;
    internal long LastFoldTotal;

    /// <summary>MALLOC_DEFINE_LIMIT (or, with <paramref name="attach"/> false, MALLOC_JUSTDEFINE_LIMIT).</summary>
    /// <param name="shortDesc">The name shown by vmstat -m; 1 to 64 printable characters.</param>
    /// <param name="longDesc">A comment; kept for tools.</param>
    /// <param name="limit">Most bytes the type may hold; 0 = the default (60% of the machine's memory).</param>
    /// <param name="attach">Attach at once (MALLOC_DEFINE) or wait for <see cref="Attach"/>.</param>
    public MallocType(string shortDesc, string longDesc = "", ulong limit = 0, bool attach = true)
    {
        ArgumentNullException.ThrowIfNull(shortDesc);
        ArgumentNullException.ThrowIfNull(longDesc);
        if (shortDesc.Length is 0 or > 64 || shortDesc.Any(char.IsControl))
            throw new ArgumentException("a malloc type's short description must be 1 to 64 printable characters", nameof(shortDesc));
        if (limit > long.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(limit), limit, "limit must be at most long.MaxValue bytes");
        ShortDesc = shortDesc;
        LongDesc = longDesc;
        ApplyLimit(limit);
        Index = TypeRegistry.Register(this);
        if (attach)
            Attach();
        else
            Checks.CheckSwitch.Refresh(this);
    }

    /// <summary>The name vmstat -m shows.</summary>
    public string ShortDesc { get; }

    /// <summary>The longer description given at definition.</summary>
    public string LongDesc { get; }

    /// <summary>The limit in bytes (the default limit when none was given).</summary>
    public ulong Limit => (ulong)Volatile.Read(ref LimitBytes);

    /// <summary>Whether the type is attached (usable for allocation).</summary>
    public bool IsAttached => State == Attached;

    /// <summary>
    /// DIAGNOSTIC mode for this type alone (see <see cref="KmemOptions.Diagnostic"/> for every type): poisoning,
    /// quarantine, redzones and the allocation log apply to its blocks. Takes effect at once for new calls.
    /// </summary>
    public bool Diagnostic
    {
        get => DiagnosticOn;
        set
        {
            Checks.CheckSwitch.SetType(this, value);
            if (!value)
                Heap.DrainQuarantineIfIdle();
        }
    }

    /// <summary>malloc_type_setlimit: takes effect at once and wakes waiters the new limit admits. 0 restores the default.</summary>
    public void SetLimit(ulong limit)
    {
        if (State != Attached)
            Panic.Raise($"malloc_type_setlimit: type '{ShortDesc}' is not attached");
        if (limit > long.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(limit), limit, "limit must be at most long.MaxValue bytes");
        lock (WaitLock)
        {
            bool wasChunked = Chunk != 0;
            ApplyLimit(limit);
            if (wasChunked && Chunk == 0)
                StaleCredit = true;
        }
        TypeAccounting.WakeWaiters(this);
    }

    private void ApplyLimit(ulong limit)
    {
        ExplicitLimit = limit != 0;
        Volatile.Write(ref LimitBytes, (long)(limit != 0 ? limit : TypeRegistry.DefaultLimit));
        // Types with a limit the caller chose are accounted exactly; the default limit is a safety net and
        // lets threads charge ahead in chunks.
        Volatile.Write(ref Chunk, ExplicitLimit ? 0 : TypeAccounting.DefaultChunk);
    }

    /// <summary>malloc_type_attach: makes the type usable and listed by vmstat -m.</summary>
    public void Attach() => TypeRegistry.Attach(this);

    /// <summary>
    /// malloc_type_detach: unlists the type. Blocks still allocated stay valid; freeing them later still accounts to
    /// the type. Live blocks are reported: "Warning: memory type … leaked memory on destroy (…)".
    /// </summary>
    public void Detach() => TypeRegistry.Detach(this);

    /// <summary>A snapshot of the type's statistics (per-thread deltas folded now).</summary>
    public MallocTypeStats GetStats() => TypeStatistics.Fold(this);

    public override string ToString() => ShortDesc;
}

/// <summary>A long with a cache line of padding on each side.</summary>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Explicit, Size = 128)]
internal struct PaddedLong
{
    [System.Runtime.InteropServices.FieldOffset(64)] public long Value;
}

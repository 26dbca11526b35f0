// Caches/ThreadCache.cs — one thread's private state, in native memory reached by one thread-static pointer:
// a bin of free blocks per size class (current list + one spare full batch, Bonwick's loaded/previous magazines as
// linked lists) and a statistics slot per malloc type (deltas folded on read). Nothing here is touched by other
// threads except statistics readers, who only read (and reset peak marks).
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kmem.Slabs;

namespace Kmem.Caches;

/// <summary>Free blocks of one size class held by one thread, and the thread's allocation count for that class.</summary>
[StructLayout(LayoutKind.Sequential, Size = 64)]
internal struct ClassBin
{
    public nuint Head;       // encoded list of free blocks
    public nuint Spare;      // encoded full batch, or 0
    public int Count;
    public int SpareCount;
    public long Allocs;
}

/// <summary>
/// One thread's statistics for one malloc type (bytes are rounded sizes). The fast paths move only Credit (and the
/// counts): the thread's net bytes are Charged − Credit, and its peak is Charged − LowCredit.
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = 64)]
internal struct TypeSlot
{
    public long Credit;      // bytes charged to the type but not in use by this thread
    public long Allocs;
    public long Frees;
    public long LowCredit;   // lowest Credit since the last fold, in today's Charged terms (the peak marker)
    public long Charged;     // bytes this thread charged to the type and has not given back (slow paths only)
    public long NetAtFold;   // net bytes when the last fold read them (written by the folder only)
    public ulong Sizes;      // size classes used
    public long Reserved;

    public readonly long Net => Charged - Credit;
    public readonly long Peak => Charged - LowCredit;
}

/// <summary>The thread's identity for leak reports and its allocation counter (birth order of its blocks).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct ThreadHeader
{
    public uint Ordinal;     // AllocContexts thread ordinal
    public uint Sequence;    // incremented by every tracked allocation of this thread
    public int OsThreadId;   // gettid
    public nuint StackComplement; // ~(an address in this thread's stack), so the leak scan knows the stack of a running thread
}

internal static unsafe class ThreadCaches
{
    public const int MaxTypes = 16384;
    private const int ContextCacheOffset = 2560;   // 64 × (site, context) pairs
    private const int ContextCacheEntries = 64;
    private const int HeaderOffset = 3072;
    private const int TypesOffset = 4096;
    private static readonly nuint CacheBytes = (nuint)(TypesOffset + MaxTypes * sizeof(TypeSlot));

    [ThreadStatic] private static byte* t_cache;
    [ThreadStatic] private static CacheOwner? t_owner;

    /// <summary>Guards the list of live caches; statistics folds and thread retirement take it.</summary>
    public static readonly object Lock = new();
    private static readonly List<nint> s_live = new();

    // Counts of caches that ended, per class.
    public static readonly long[] RetiredAllocs = new long[SizeClasses.Count];

    static ThreadCaches()
    {
        if (sizeof(ClassBin) * SizeClasses.Count > ContextCacheOffset || ContextCacheOffset + ContextCacheEntries * 8 > HeaderOffset)
            throw new InvalidOperationException("thread cache layout is inconsistent");
    }

    /// <summary>This thread's cache, made on first use.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* Current()
    {
        byte* tc = t_cache;
        return tc != null ? tc : Create();
    }

    /// <summary>This thread's cache, or null if it has none yet.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static byte* CurrentOrNull() => t_cache;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ClassBin* Bin(byte* tc, int cls) => (ClassBin*)tc + cls;

    /// <summary>The cache a bin of class <paramref name="cls"/> belongs to.</summary>
    public static byte* CacheOf(ClassBin* bin, int cls) => (byte*)(bin - cls);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TypeSlot* Slot(byte* tc, int typeIndex) => (TypeSlot*)(tc + TypesOffset) + typeIndex;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ThreadHeader* Header(byte* tc) => (ThreadHeader*)(tc + HeaderOffset);

    /// <summary>The allocation context of <paramref name="site"/> on this thread (a direct-mapped cache in front of the table).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Context(byte* tc, uint site)
    {
        ulong e = ((ulong*)(tc + ContextCacheOffset))[site & (ContextCacheEntries - 1)];
        return (uint)e == site && e != 0 ? (uint)(e >> 32) : ContextSlow(tc, site);
    }

    /// <summary>The allocation context of <paramref name="site"/> if this thread's cache has it, else 0 (no context is 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint CachedContext(byte* tc, uint site)
    {
        ulong e = ((ulong*)(tc + ContextCacheOffset))[site & (ContextCacheEntries - 1)];
        return (uint)e == site ? (uint)(e >> 32) : 0;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static uint ContextSlow(byte* tc, uint site)
    {
        uint context = Diagnostics.AllocContexts.Intern(site, Header(tc)->Ordinal);
        ((ulong*)(tc + ContextCacheOffset))[site & (ContextCacheEntries - 1)] = site | ((ulong)context << 32);
        return context;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static byte* Create()
    {
        Pages.KmemMap.EnsureStarted();
        var pages = Platform.OsPages.Provider;
        nint p = pages.Reserve(CacheBytes);
        if (p == 0 || !Pages.FaultInjection.CommitMetadata(pages, p, CacheBytes))
            throw new OutOfMemoryException("Kmem: cannot map a thread cache.");
        Pages.OwnRegions.Add((void*)p, CacheBytes);
        ThreadHeader* header = Header((byte*)p);
        header->Ordinal = Diagnostics.AllocContexts.RegisterThread();
        header->OsThreadId = pages.CurrentThreadId();
        header->StackComplement = ~(nuint)(&header); // a local: an address in this thread's stack
        lock (Lock)
            s_live.Add(p);
        t_cache = (byte*)p;
        t_owner = new CacheOwner(p);
        return (byte*)p;
    }

    /// <summary>Snapshot of live caches; the caller holds <see cref="Lock"/>.</summary>
    public static List<nint> LiveUnderLock => s_live;

    /// <summary>Folds a dead thread's cache into the shared state: blocks to the depots, counts to the types.</summary>
    private static void Retire(nint cache)
    {
        byte* tc = (byte*)cache;
        List<(MallocType Type, long Credit)> credits;
        lock (Lock)
        {
            s_live.Remove(cache);
            for (int c = 0; c < SizeClasses.Count; c++)
            {
                ClassBin* bin = Bin(tc, c);
                ClassDepot.All[c].PushLoose(bin->Head, bin->Count);
                ClassDepot.All[c].PushLoose(bin->Spare, bin->SpareCount);
                RetiredAllocs[c] += bin->Allocs;
            }
            credits = Types.TypeRegistry.RetireSlots(tc);
            Leak.LeakScanner.ThreadEnded(Header(tc)->Ordinal, Header(tc)->Sequence);
        }
        foreach ((MallocType type, long credit) in credits)
            Types.TypeAccounting.Uncharge(type, credit);
        Pages.OwnRegions.Remove((void*)cache, CacheBytes);
        Platform.OsPages.Provider.Release(cache, CacheBytes);
    }

    /// <summary>Ends with its thread: the thread-static reference is the only one, so finalization means the thread is gone.</summary>
    private sealed class CacheOwner(nint cache)
    {
        ~CacheOwner() => Retire(cache);
    }
}

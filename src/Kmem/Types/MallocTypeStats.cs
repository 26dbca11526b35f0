// Types/MallocTypeStats.cs — a snapshot of one type's statistics, the fields of struct malloc_type that vmstat -m prints.
namespace Kmem;

/// <summary>One malloc type's statistics at one moment. Bytes are rounded (size-class or page) sizes, as NetBSD counts.</summary>
/// <param name="Type">The type's short description.</param>
/// <param name="InUse">Blocks currently allocated (ks_inuse).</param>
/// <param name="MemUse">Bytes currently allocated (ks_memuse).</param>
/// <param name="HighUse">Highest MemUse seen (ks_maxused).</param>
/// <param name="Limit">The limit in bytes (ks_limit).</param>
/// <param name="Requests">Allocations ever (ks_calls).</param>
/// <param name="LimitBlocks">Times a caller met the limit and waited or failed (ks_limblocks).</param>
/// <param name="SizesUsed">Every block size the type has used, ascending (ks_size).</param>
public sealed record MallocTypeStats(
    string Type,
    long InUse,
    long MemUse,
    long HighUse,
    ulong Limit,
    long Requests,
    long LimitBlocks,
    IReadOnlyList<ulong> SizesUsed);

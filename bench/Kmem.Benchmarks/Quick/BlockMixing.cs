// Quick/BlockMixing.cs — the child's `mixing` command: how much the free blocks of different threads share side-table
// lines. Between repetitions every block of threads2-scaling is free (each repetition drains its window), in a thread's
// bins or in a depot shard (the depot's loose list, blocks of dead threads, is not walked); a 32-slot group of a slab
// (one cache line of owner entries, two of contexts) that holds free blocks of two shards will hand blocks of one line
// to both threads in the next repetition.
namespace Kmem.Benchmarks.Quick;

internal static unsafe class BlockMixing
{
    private const int GroupSlots = 32;

    /// <summary>"groups G mixed M": G groups hold free blocks, M of them blocks of more than one depot shard (a thread's
    /// bins count as its shard, the thread ordinal modulo <see cref="Slabs.ClassDepot.Shards"/>). Run it while no other
    /// thread allocates or frees (the walk takes no thread's cache lock).</summary>
    public static string Measure()
    {
        var shardsOfGroup = new Dictionary<(int Class, uint Unit, uint Group), int>(); // bit per shard (16 shards)
        void Walk(nuint link, int cls, int shard)
        {
            for (int n = 0; link != 0 && n < 1 << 20; n++)
            {
                byte* p = Slabs.BlockLink.Decode(link);
                nuint off = (nuint)(p - Pages.KmemMap.Base);
                uint slot = Slabs.SizeClasses.SlotOf(cls, off & Pages.KmemMap.UnitMask);
                var key = (cls, (uint)(off >> Pages.KmemMap.UnitShift), slot / GroupSlots);
                shardsOfGroup[key] = shardsOfGroup.GetValueOrDefault(key) | 1 << shard;
                link = Slabs.BlockLink.Next(p);
            }
        }

        lock (Caches.ThreadCaches.Lock)
        {
            foreach (nint tc in Caches.ThreadCaches.LiveUnderLock)
            {
                int shard = (int)(Caches.ThreadCaches.Header((byte*)tc)->Ordinal % Slabs.ClassDepot.Shards);
                for (int c = 0; c < Slabs.SizeClasses.Count; c++)
                {
                    Caches.ClassBin* bin = Caches.ThreadCaches.Bin((byte*)tc, c);
                    Walk(bin->Head, c, shard);
                    Walk(bin->Spare, c, shard);
                }
            }
        }

        for (int c = 0; c < Slabs.SizeClasses.Count; c++)
        {
            int cls = c;
            Slabs.ClassDepot.All[c].Inspect(view =>
            {
                for (int shard = 0; shard < view.BatchHeads.Length; shard++)
                {
                    for (nuint batch = view.BatchHeads[shard]; batch != 0;)
                    {
                        nuint next = Slabs.BlockLink.NextBatch(Slabs.BlockLink.Decode(batch));
                        Walk(batch, cls, shard);
                        batch = next;
                    }
                }
                return 0;
            });
        }

        int mixed = shardsOfGroup.Values.Count(bits => (bits & (bits - 1)) != 0);
        return $"groups {shardsOfGroup.Count} mixed {mixed}";
    }
}

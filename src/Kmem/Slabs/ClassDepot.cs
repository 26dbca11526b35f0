// Slabs/ClassDepot.cs — the shared depot of one size class: full batches spilled by thread caches (kept in shards, one
// per thread ordinal modulo Shards), loose blocks from dead threads, and the slab being carved. Thread caches come here
// once per batch; everything here is under one lock.
using Kmem.Pages;

namespace Kmem.Slabs;

internal sealed unsafe class ClassDepot
{
    public static readonly ClassDepot[] All = CreateAll();
    private static readonly List<uint> s_allSlabs = new();

    /// <summary>Every slab unit ever made (slabs are never given back).</summary>
    public static uint[] AllSlabs()
    {
        lock (s_allSlabs)
            return s_allSlabs.ToArray();
    }

    /// <summary>Shards of full batches. A thread spills to the shard of its ordinal and refills from it first, so the
    /// blocks it frees come back to it and not to another thread: two threads whose blocks share a side-table cache
    /// line (32 owner entries) make each other's every malloc and free miss on that line.</summary>
    public const int Shards = 16;

    private readonly object _lock = new();
    private readonly int _class;
    private readonly uint _size;
    private readonly int _batch;
    private readonly nuint[] _batchHeads = new nuint[Shards]; // encoded; batches of exactly _batch blocks
    private readonly long[] _batchCounts = new long[Shards];
    private long _batchCount;       // over every shard
    private nuint _looseHead;       // encoded; single blocks
    private long _looseCount;
    private long _carveUnit = -1;   // slab being carved
    private uint _carveSlot;
    private long _carved;           // blocks ever carved (kb_total)

    private ClassDepot(int cls)
    {
        _class = cls;
        _size = SizeClasses.SizeOf(cls);
        _batch = SizeClasses.BatchOf(cls);
    }

    private static ClassDepot[] CreateAll()
    {
        var all = new ClassDepot[SizeClasses.Count];
        for (int c = 0; c < all.Length; c++)
            all[c] = new ClassDepot(c);
        return all;
    }

    public int Batch => _batch;
    public long Carved => Volatile.Read(ref _carved);
    public long Cached { get { lock (_lock) return _batchCount * _batch + _looseCount; } }

    /// <summary>Whether a slot of a slab of this class was ever handed to a cache (a racy read: for messages only).</summary>
    public bool WasCarved(uint unit, uint slot) => Volatile.Read(ref _carveUnit) != unit || slot < Volatile.Read(ref _carveSlot);

    /// <summary>The depot's lists and carving position, as <see cref="Inspect"/> shows them (links are encoded; the
    /// shards' heads and counts are copies).</summary>
    public readonly record struct View(nuint[] BatchHeads, long[] BatchCounts, long BatchCount, int Batch, nuint LooseHead,
        long LooseCount, long CarveUnit, uint CarveSlot, long Carved);

    /// <summary>Runs <paramref name="read"/> on the depot's state with its lock held, so no list changes meanwhile
    /// (the heap verifier walks the lists inside).</summary>
    public T Inspect<T>(Func<View, T> read)
    {
        lock (_lock)
            return read(new View((nuint[])_batchHeads.Clone(), (long[])_batchCounts.Clone(), _batchCount, _batch, _looseHead,
                _looseCount, _carveUnit, _carveSlot, _carved));
    }

    /// <summary>
    /// Fills an empty list of the thread with ordinal <paramref name="thread"/> with up to one batch: from its own shard,
    /// else the loose blocks, else a new run of the slab being carved while it has room, else another shard's batch,
    /// else a run of a new slab. Another thread's batch mixes the two threads' blocks in the same side-table lines for
    /// good (it comes back to this thread's shard when freed), so the rest of the current slab goes first; the heap grows
    /// by at most that slab while other shards hold batches, and a new slab is made only when no batch waits. With
    /// <paramref name="spare"/> non-null, a run carved for a class of 16 blocks a batch is two batches, the
    /// second in *spare, so runs of different threads do not share a cache line of 32 owner entries. (A batch of 32 or
    /// 64 fills whole lines alone; batches of 8 and 4 are for 5–32 KiB blocks, where doubling the run would hand a thread
    /// half a slab or all of it.) Returns the count (0 when no pages could be had).
    /// </summary>
    public int Refill(uint thread, out nuint head, nuint* spare)
    {
        lock (_lock)
        {
            int own = (int)(thread % Shards);
            if (TakeBatch(own, out head))
                return _batch;
            if (_looseHead != 0)
                return TakeLoose(out head);
            if (!CarvingSlabHasRoom)
            {
                for (int i = 1; i < Shards; i++)
                {
                    if (TakeBatch((own + i) & (Shards - 1), out head))
                        return _batch;
                }
            }
            int n = Carve(out head);
            if (spare != null && n == _batch && 2 * _batch == OwnerLineSlots && (_carveSlot & (OwnerLineSlots - 1)) != 0
                && CarvingSlabHasRoom)
            {
                int m = Carve(out nuint second);
                if (m == _batch)
                    *spare = second;
                else
                    PushLoose(second, m); // a run cut short by the slab's end (the lock is re-entrant)
            }
            return n;
        }
    }

    // Whether the slab being carved has a slot left (false before the first slab, when no batch can exist either).
    private bool CarvingSlabHasRoom => _carveUnit >= 0 && _carveSlot < SizeClasses.BlocksPerSlab(_class);

    private bool TakeBatch(int shard, out nuint head)
    {
        head = _batchHeads[shard];
        if (head == 0)
            return false;
        byte* b = BlockLink.Decode(head);
        _batchHeads[shard] = BlockLink.NextBatch(b);
        BlockLink.NextBatch(b) = 0;
        _batchCounts[shard]--;
        _batchCount--;
        return true;
    }

    // Owner entries (2 bytes) in a 64-byte cache line.
    private const int OwnerLineSlots = 32;

    /// <summary>Takes a full batch (exactly <see cref="Batch"/> blocks) from the thread with ordinal <paramref name="thread"/>.</summary>
    public void PushBatch(uint thread, nuint head)
    {
        int shard = (int)(thread % Shards);
        lock (_lock)
        {
            BlockLink.NextBatch(BlockLink.Decode(head)) = _batchHeads[shard];
            _batchHeads[shard] = head;
            _batchCounts[shard]++;
            _batchCount++;
        }
    }

    /// <summary>Takes a list of any length (a dead thread's cache).</summary>
    public void PushLoose(nuint head, int count)
    {
        if (head == 0)
            return;
        byte* tail = BlockLink.Decode(head);
        while (BlockLink.Next(tail) != 0)
            tail = BlockLink.Decode(BlockLink.Next(tail));
        lock (_lock)
        {
            BlockLink.Next(tail) = _looseHead;
            _looseHead = head;
            _looseCount += count;
        }
    }

    private int TakeLoose(out nuint head)
    {
        head = _looseHead;
        byte* last = BlockLink.Decode(head);
        int n = 1;
        while (n < _batch && BlockLink.Next(last) != 0)
        {
            last = BlockLink.Decode(BlockLink.Next(last));
            n++;
        }
        _looseHead = BlockLink.Next(last);
        BlockLink.Next(last) = 0;
        _looseCount -= n;
        return n;
    }

    private int Carve(out nuint head)
    {
        head = 0;
        if (!CarvingSlabHasRoom)
        {
            if (!NewSlab())
                return 0;
        }
        uint unit = (uint)_carveUnit;
        byte* slabBase = KmemMap.UnitAddress(unit);
        uint end = Math.Min(SizeClasses.BlocksPerSlab(_class), _carveSlot + (uint)_batch);
        // Link the new blocks in address order, last one first so the list starts at the lowest address.
        nuint link = 0;
        for (uint slot = end; slot-- > _carveSlot;)
        {
            byte* p = slabBase + slot * _size;
            BlockLink.Next(p) = link; // the block's owner entry is already 0 (fresh side table)
            link = BlockLink.Encode(p);
        }
        int n = (int)(end - _carveSlot);
        _carveSlot = end;
        _carved += n;
        head = link;
        return n;
    }

    private bool NewSlab()
    {
        long unit = KmemMap.AllocUnits(1, KmemMap.UnitSize);
        if (unit < 0)
            return false;
        if (!SlabMeta.CommitFor((uint)unit))
        {
            KmemMap.FreeUnits((uint)unit, 1, KmemMap.UnitSize);
            return false;
        }
        UnitInfo* e = PageMap.Entry((uint)unit);
        e->Class = (byte)_class;
        e->TypeIndex = 0;
        e->Site = 0;
        e->Pages = (uint)(KmemMap.UnitSize / (nuint)KmemMap.PageSize);
        e->Head = 1;
        Volatile.Write(ref *(byte*)&e->Kind, (byte)UnitKind.Slab);
        PageMap.MarkSlab((uint)unit, _class);
        _carveUnit = unit;
        _carveSlot = 0;
        lock (s_allSlabs)
            s_allSlabs.Add((uint)unit);
        return true;
    }
}

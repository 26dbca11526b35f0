// Slabs/ClassDepot.cs — the shared depot of one size class: full batches spilled by thread caches, loose blocks from
// dead threads, and the slab being carved. Thread caches come here once per batch; everything here is under one lock.
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

    private readonly object _lock = new();
    private readonly int _class;
    private readonly uint _size;
    private readonly int _batch;
    private nuint _batchHead;       // encoded; batches of exactly _batch blocks
    private long _batchCount;
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

    /// <summary>The depot's lists and carving position, as <see cref="Inspect"/> shows them (links are encoded).</summary>
    public readonly record struct View(nuint BatchHead, long BatchCount, int Batch, nuint LooseHead, long LooseCount,
        long CarveUnit, uint CarveSlot, long Carved);

    /// <summary>Runs <paramref name="read"/> on the depot's state with its lock held, so no list changes meanwhile
    /// (the heap verifier walks the lists inside).</summary>
    public T Inspect<T>(Func<View, T> read)
    {
        lock (_lock)
            return read(new View(_batchHead, _batchCount, _batch, _looseHead, _looseCount, _carveUnit, _carveSlot, _carved));
    }

    /// <summary>Fills an empty list with up to one batch. Returns the count (0 when no pages could be had).</summary>
    public int Refill(out nuint head)
    {
        lock (_lock)
        {
            if (_batchHead != 0)
            {
                byte* b = BlockLink.Decode(_batchHead);
                head = _batchHead;
                _batchHead = BlockLink.NextBatch(b);
                BlockLink.NextBatch(b) = 0;
                _batchCount--;
                return _batch;
            }
            if (_looseHead != 0)
                return TakeLoose(out head);
            return Carve(out head);
        }
    }

    /// <summary>Takes a full batch (exactly <see cref="Batch"/> blocks) from a thread cache.</summary>
    public void PushBatch(nuint head)
    {
        lock (_lock)
        {
            BlockLink.NextBatch(BlockLink.Decode(head)) = _batchHead;
            _batchHead = head;
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
        uint perSlab = SizeClasses.BlocksPerSlab(_class);
        if (_carveUnit < 0 || _carveSlot >= perSlab)
        {
            if (!NewSlab())
                return 0;
        }
        uint unit = (uint)_carveUnit;
        byte* slabBase = KmemMap.UnitAddress(unit);
        uint end = Math.Min(perSlab, _carveSlot + (uint)_batch);
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

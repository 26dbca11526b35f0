// Diagnostics/HeapVerifier.cs — Heap.Verify: walks every piece of allocator and detector metadata (page map, slabs'
// side tables, free lists of depots, thread caches and the quarantine, type statistics, large blocks, per-CPU chunks,
// vmalloc areas, guard-page blocks, leak records) and checks each against the others. Only reads. Its own tables hold
// slot states, counts and unit numbers, never a block address (problem texts hold addresses as hex text).
using Kmem.Caches;
using Kmem.Checks;
using Kmem.Leak;
using Kmem.Pages;
using Kmem.Slabs;
using Kmem.Types;

namespace Kmem.Diagnostics;

internal static unsafe class HeapVerifier
{
    /// <summary>At most this many problems are listed; the rest are counted in a last line.</summary>
    public const int MaxListed = 200;

    /// <summary>What a walk found: the problems, and a one-line account of what was checked.</summary>
    public sealed record Result(IReadOnlyList<string> Problems, string Summary);

    // Slot states while walking a slab.
    private const byte Unseen = 0, Listed = 1, Quarantined = 2;

    public static Result Run()
    {
        if (!KmemMap.IsStarted)
            return new Result(Array.Empty<string>(), "verify: the heap is empty (nothing allocated yet)");
        return new Walk().Run();
    }

    private sealed class Walk
    {
        private readonly List<string> _problems = new();
        private int _unlisted;
        private readonly Dictionary<uint, byte[]> _slabs = new();       // slab unit → slot states
        private readonly long[] _typeBlocks = new long[ThreadCaches.MaxTypes];
        private readonly long[] _typeBytes = new long[ThreadCaches.MaxTypes];
        private readonly long[] _largeInBucket = new long[LargeBlocks.Buckets];
        private readonly HashSet<nuint> _liveKmemKeys = new();          // kmem_map offsets of live large/vmalloc/per-CPU objects
        private long _listed, _quarantined, _allocated, _withdrawn, _lostBehindCuts, _large, _perCpu, _vmalloc, _guarded, _records;

        private void Problem(string text)
        {
            if (_problems.Count < MaxListed)
                _problems.Add(text);
            else
                _unlisted++;
        }

        private static string Addr(nuint off) => "0x" + ((nuint)KmemMap.Base + off).ToString("x");

        private static string TypeName(int index) => TypeRegistry.ByIndex(index)?.ShortDesc ?? $"#{index}";

        public Result Run()
        {
            // Snapshots of the structures with their own locks, taken before the thread caches' lock (never inside it).
            uint[] slabUnits = ClassDepot.AllSlabs();
            List<PerCpuAllocator.ChunkView> chunks = PerCpuAllocator.Snapshot();
            KeyValuePair<uint, nuint>[] areas = VmallocAreas.Snapshot();
            var guarded = GuardPages.LiveBlocks();
            (LeakRecord[] kmemRecords, LeakRecord[] guardRecords) = LeakTracking.SnapshotForVerify();
            (HashSet<nuint> withdrawnLinks, long[] cutBudget) = WithdrawnBlocks.Snapshot();
            var quarantine = new List<QuarantineEntry>();
            // Poison is checked under the quarantine's lock: a block that left it after the snapshot may be in use again.
            var poisonChanged = new HashSet<nuint>(); // links (offsets + 1), never addresses
            Quarantine.ForEach(e =>
            {
                quarantine.Add(e);
                if (Heap.PoisonChanged(e, "verify: "))
                    poisonChanged.Add(e.Link);
            });
            foreach (LeakRecord r in kmemRecords)
                _recordsByKey[r.Key] = r;

            foreach (uint unit in slabUnits)
            {
                UnitInfo* e = PageMap.LookupOffset((nuint)unit << KmemMap.UnitShift);
                if (e == null || e->Kind != UnitKind.Slab || e->Class >= SizeClasses.Count)
                {
                    Problem($"slab unit {unit} is not marked as a slab in the page map");
                    continue;
                }
                _slabs[unit] = new byte[SizeClasses.BlocksPerSlab(e->Class)];
            }
            WalkPageMap(areas, chunks);
            CheckPerCpu(chunks);
            CheckGuarded(guarded, guardRecords);

            // Folding a dead thread's cache holds this lock, so none is folded during the walk. Live threads move batches
            // between their bins and the depots under the depots' locks only: the walk is exact at the caller's quiet
            // moment, as the documentation says.
            lock (ThreadCaches.Lock)
            {
                var carve = new ClassDepot.View[SizeClasses.Count];
                for (int c = 0; c < SizeClasses.Count; c++)
                {
                    int cls = c;
                    carve[c] = ClassDepot.All[c].Inspect(v =>
                    {
                        WalkDepot(cls, v);
                        return v;
                    });
                }
                foreach (nint tc in ThreadCaches.LiveUnderLock)
                {
                    for (int c = 0; c < SizeClasses.Count; c++)
                    {
                        ClassBin* bin = ThreadCaches.Bin((byte*)tc, c);
                        WalkList(bin->Head, bin->Count, c, "a thread's bin");
                        WalkList(bin->Spare, bin->SpareCount, c, "a thread's spare batch");
                    }
                }
                CheckQuarantine(quarantine, poisonChanged);
                CheckSlabs(carve, withdrawnLinks, cutBudget);
                CheckTypes();
            }
            CheckLargeBuckets();
            CheckRecords(kmemRecords);

            if (_unlisted > 0)
                _problems.Add($"... and {_unlisted} more problem(s)");
            int total = _problems.Count - (_unlisted > 0 ? 1 : 0) + _unlisted;
            string summary = $"verify: {_allocated} allocated, {_listed} listed free and {_quarantined} quarantined blocks in {_slabs.Count} slabs"
                + $" ({_withdrawn + _lostBehindCuts} withdrawn), {_large} large blocks, {_perCpu} per-CPU objects, {_vmalloc} vmalloc areas,"
                + $" {_guarded} guarded blocks, {_records} leak records checked, {total} problem(s)";
            return new Result(_problems, summary);
        }

        // ---- free lists ----

        // Resolves a link of a list of class cls to its slab and slot without touching the block; false (with a problem
        // reported) when the link names no block start of that class.
        private bool Resolve(nuint link, int cls, string where, out uint unit, out uint slot)
        {
            nuint off = BlockLink.OffsetOf(link);
            unit = 0;
            slot = 0;
            if (off >= KmemMap.Size)
            {
                Problem($"{where} of size {SizeClasses.SizeOf(cls)} links outside kmem_map (link 0x{link:x})");
                return false;
            }
            unit = (uint)(off >> KmemMap.UnitShift);
            UnitInfo* e = PageMap.LookupOffset(off);
            if (e == null || e->Kind != UnitKind.Slab || !_slabs.ContainsKey(unit))
            {
                Problem($"{where} of size {SizeClasses.SizeOf(cls)} links to {Addr(off)}, which is not in a slab");
                return false;
            }
            if (e->Class != cls)
            {
                Problem($"{where} of size {SizeClasses.SizeOf(cls)} links to {Addr(off)}, a block of size {SizeClasses.SizeOf(e->Class)}");
                return false;
            }
            nuint inUnit = off & KmemMap.UnitMask;
            slot = SizeClasses.SlotOf(cls, inUnit);
            if ((nuint)slot * SizeClasses.SizeOf(cls) != inUnit || slot >= SizeClasses.BlocksPerSlab(cls))
            {
                Problem($"{where} of size {SizeClasses.SizeOf(cls)} links to {Addr(off)}, not the start of a block");
                return false;
            }
            return true;
        }

        // Walks one list of free blocks: every link must name a free block of the class not seen on any list before
        // (which also ends a cycle), and the list must hold exactly `count` blocks. Returns the blocks walked.
        private long WalkList(nuint link, long count, int cls, string where)
        {
            long n = 0;
            while (link != 0)
            {
                if (!Resolve(link, cls, where, out uint unit, out uint slot))
                    return n;
                byte[] states = _slabs[unit];
                nuint off = BlockLink.OffsetOf(link);
                if (states[slot] != Unseen)
                {
                    Problem($"{where} of size {SizeClasses.SizeOf(cls)} reaches {Addr(off)} a second time (a cycle, or a block on two lists)");
                    return n;
                }
                states[slot] = Listed;
                _listed++;
                n++;
                ushort owner = SlabMeta.Owner(SlabMeta.Of(unit), slot);
                if (owner != 0)
                    Problem($"block {Addr(off)} of size {SizeClasses.SizeOf(cls)} is on {where} but allocated (owner {TypeName(owner & Redzones.TypeMask)})");
                link = BlockLink.Next(KmemMap.Base + off);
            }
            if (n != count)
                Problem($"{where} of size {SizeClasses.SizeOf(cls)} holds {n} blocks but counts {count}");
            return n;
        }

        private void WalkDepot(int cls, ClassDepot.View v)
        {
            long all = 0;
            for (int shard = 0; shard < v.BatchHeads.Length; shard++)
                all += WalkBatches(cls, v, v.BatchHeads[shard], v.BatchCounts[shard], $"shard {shard} of the depot");
            if (all != v.BatchCount)
                Problem($"the depot of size {SizeClasses.SizeOf(cls)} holds {all} full batches but counts {v.BatchCount}");
            WalkList(v.LooseHead, v.LooseCount, cls, "the depot's loose list");
        }

        // One shard's batches; returns how many it holds (its count when the walk had to stop early).
        private long WalkBatches(int cls, ClassDepot.View v, nuint batch, long count, string where)
        {
            long batches = 0;
            while (batch != 0)
            {
                if (batches == count)
                {
                    Problem($"{where} of size {SizeClasses.SizeOf(cls)} has more full batches than it counts ({count})");
                    return count;
                }
                if (!Resolve(batch, cls, "the depot's batch list", out uint unit, out uint slot))
                    return count;
                bool seen = _slabs[unit][slot] != Unseen;
                nuint next = BlockLink.NextBatch(BlockLink.Decode(batch)); // read before the walk: only a head holds it
                long n = WalkList(batch, v.Batch, cls, "a full batch in the depot");
                batches++;
                if (seen || n != v.Batch)
                    return count;
                batch = next;
            }
            if (batches != count)
                Problem($"{where} of size {SizeClasses.SizeOf(cls)} holds {batches} full batches but counts {count}");
            return batches;
        }

        private void CheckQuarantine(List<QuarantineEntry> entries, HashSet<nuint> poisonChanged)
        {
            var perClass = new long[SizeClasses.Count];
            foreach (QuarantineEntry e in entries)
            {
                if (e.Class >= SizeClasses.Count)
                {
                    Problem($"a quarantine entry names size class {e.Class}, which does not exist");
                    continue;
                }
                perClass[e.Class]++;
                if (!Resolve(e.Link, e.Class, "the quarantine", out uint unit, out uint slot))
                    continue;
                nuint off = BlockLink.OffsetOf(e.Link);
                byte[] states = _slabs[unit];
                if (states[slot] != Unseen)
                {
                    Problem($"block {Addr(off)} of size {SizeClasses.SizeOf(e.Class)} is in the quarantine and also on a free list or in the quarantine twice");
                    continue;
                }
                states[slot] = Quarantined;
                _quarantined++;
                if (SlabMeta.Owner(SlabMeta.Of(unit), slot) != 0)
                    Problem($"block {Addr(off)} of size {SizeClasses.SizeOf(e.Class)} is in the quarantine but allocated");
                else if (poisonChanged.Contains(e.Link))
                    Problem($"block {Addr(off)} of size {SizeClasses.SizeOf(e.Class)} was written after free (its poison changed in the quarantine)");
            }
            for (int c = 0; c < SizeClasses.Count; c++)
                if (perClass[c] != Quarantine.CountOf(c))
                    Problem($"the quarantine holds {perClass[c]} blocks of size {SizeClasses.SizeOf(c)} but counts {Quarantine.CountOf(c)}");
        }

        // ---- slabs ----

        private void CheckSlabs(ClassDepot.View[] carve, HashSet<nuint> withdrawnLinks, long[] cutBudget)
        {
            var slabsOfClass = new long[SizeClasses.Count];
            foreach ((uint unit, byte[] states) in _slabs)
            {
                int cls = PageMap.LookupOffset((nuint)unit << KmemMap.UnitShift)->Class;
                slabsOfClass[cls]++;
                uint size = SizeClasses.SizeOf(cls);
                uint perSlab = (uint)states.Length;
                uint carved = carve[cls].CarveUnit == unit ? carve[cls].CarveSlot : perSlab;
                byte* meta = SlabMeta.Of(unit);
                byte* slabBase = KmemMap.UnitAddress(unit);
                for (uint slot = 0; slot < perSlab; slot++)
                {
                    ushort owner = SlabMeta.Owner(meta, slot);
                    nuint off = ((nuint)unit << KmemMap.UnitShift) + (nuint)slot * size;
                    if (slot >= carved)
                    {
                        if (owner != 0)
                            Problem($"block {Addr(off)} of size {size} was never carved but has owner {TypeName(owner & Redzones.TypeMask)}");
                        else if (states[slot] != Unseen)
                            Problem($"block {Addr(off)} of size {size} was never carved but is on a free list or in the quarantine");
                        continue;
                    }
                    if (owner != 0)
                    {
                        // Listed-and-allocated was reported by the walk; count the block as allocated either way.
                        int type = owner & Redzones.TypeMask;
                        if ((owner & ~(Redzones.TypeMask | Redzones.OwnerFlag)) != 0 || TypeRegistry.ByIndex(type) is null)
                        {
                            Problem($"block {Addr(off)} of size {size} has owner entry 0x{owner:x4}, which names no malloc type");
                            continue;
                        }
                        _allocated++;
                        _typeBlocks[type]++;
                        _typeBytes[type] += size;
                        if ((owner & Redzones.OwnerFlag) != 0)
                        {
                            (int before, int after, _) = Redzones.Verify(slabBase + (nuint)slot * size, size);
                            if (before != 0 || after != 0)
                                Problem($"redzoned block {Addr(off + Redzones.Front)} of size {size} (type {TypeName(type)}) has {before} byte(s) changed before it and {after} after it");
                        }
                        continue;
                    }
                    if (states[slot] != Unseen)
                        continue;
                    // Carved, free, on no list and not in the quarantine: withdrawn on purpose, or lost.
                    if (withdrawnLinks.Contains(off + 1))
                        _withdrawn++;
                    else if (cutBudget[cls] > 0)
                    {
                        cutBudget[cls]--;
                        _lostBehindCuts++;
                    }
                    else
                        Problem($"block {Addr(off)} of size {size} is neither allocated nor on a free list (lost)");
                }
                if (SlabMeta.Owner(meta, perSlab) != 0)
                    Problem($"the owner entry after the last block of slab unit {unit} (size {size}) is not 0");
            }
            for (int c = 0; c < SizeClasses.Count; c++)
            {
                ClassDepot.View v = carve[c];
                long expected = slabsOfClass[c] == 0 ? 0 : (slabsOfClass[c] - 1) * SizeClasses.BlocksPerSlab(c) + v.CarveSlot;
                if (v.CarveUnit >= 0 && !_slabs.ContainsKey((uint)v.CarveUnit))
                    Problem($"the depot of size {SizeClasses.SizeOf(c)} carves slab unit {v.CarveUnit}, which is not a known slab");
                else if (expected != v.Carved)
                    Problem($"the depot of size {SizeClasses.SizeOf(c)} counts {v.Carved} blocks carved, its slabs hold {expected}");
            }
        }

        // ---- the page map: large blocks, vmalloc areas, per-CPU chunks ----

        private void WalkPageMap(KeyValuePair<uint, nuint>[] areas, List<PerCpuAllocator.ChunkView> chunks)
        {
            var descriptors = new Dictionary<uint, nuint>(areas);
            var chunkUnits = new HashSet<uint>(chunks.Select(c => c.FirstUnit));
            nuint page = (nuint)KmemMap.PageSize;
            uint expectTailOf = 0, tailsLeft = 0;
            UnitKind tailKind = UnitKind.Unused;
            for (uint u = 1; u < KmemMap.UnitCount; u++)
            {
                UnitInfo* e = PageMap.LookupOffset((nuint)u << KmemMap.UnitShift);
                if (e == null)
                {
                    if (tailsLeft > 0)
                        Problem($"the run of unit {expectTailOf} continues into a chunk with no page-map table");
                    tailsLeft = 0;
                    u = (u / (uint)KmemMap.UnitsPerChunk + 1) * (uint)KmemMap.UnitsPerChunk - 1; // next chunk
                    continue;
                }
                UnitKind kind = e->Kind;
                int flat = PageMap.SlabClassPlusOne((nuint)u << KmemMap.UnitShift);
                if (flat != (kind == UnitKind.Slab ? e->Class + 1 : 0))
                    Problem($"unit {u}: the flat slab-class byte says class {flat - 1} but the page map says {kind} (class {e->Class})");
                if (tailsLeft > 0)
                {
                    tailsLeft--;
                    if (kind != tailKind || e->Head != expectTailOf)
                    {
                        Problem($"unit {u} should be a {tailKind} of unit {expectTailOf} but is {kind} (head {e->Head})");
                        tailsLeft = 0;
                    }
                    continue;
                }
                switch (kind)
                {
                    case UnitKind.Unused:
                    case UnitKind.Released:
                        break;
                    case UnitKind.Slab:
                        if (!_slabs.ContainsKey(u))
                            Problem($"unit {u} is marked as a slab of size {(e->Class < SizeClasses.Count ? SizeClasses.SizeOf(e->Class) : 0)} but no depot made it");
                        break;
                    case UnitKind.LargeHead:
                    {
                        uint units = e->Head;
                        nuint bytes = (nuint)e->Pages * page;
                        if (units == 0 || e->Pages == 0 || bytes > (nuint)units * KmemMap.UnitSize || bytes <= (nuint)(units - 1) * KmemMap.UnitSize)
                        {
                            Problem($"large block at unit {u}: {e->Pages} pages do not fit its run of {units} units");
                            break;
                        }
                        (expectTailOf, tailsLeft, tailKind) = (u, units - 1, UnitKind.LargeTail);
                        _large++;
                        _largeInBucket[LargeBlocks.BucketOf(bytes)]++;
                        Owned(e->TypeIndex, (long)bytes, $"large block {Addr((nuint)u << KmemMap.UnitShift)}");
                        _liveKmemKeys.Add((nuint)u << KmemMap.UnitShift);
                        CheckRecordOf((nuint)u << KmemMap.UnitShift, RecordKind.Large, bytes, e->TypeIndex, "large block");
                        break;
                    }
                    case UnitKind.VmallocHead:
                    {
                        uint units = e->Head;
                        nuint bytes = (nuint)e->Pages * page;
                        if (units == 0 || e->Pages == 0 || bytes + 2 * page > (nuint)units * KmemMap.UnitSize)
                        {
                            Problem($"vmalloc area at unit {u}: {e->Pages} pages and two guard pages do not fit its run of {units} units");
                            break;
                        }
                        (expectTailOf, tailsLeft, tailKind) = (u, units - 1, UnitKind.VmallocTail);
                        _vmalloc++;
                        nuint areaOff = ((nuint)u << KmemMap.UnitShift) + page;
                        Owned(e->TypeIndex, (long)bytes, $"vmalloc area {Addr(areaOff)}");
                        _liveKmemKeys.Add(areaOff);
                        CheckRecordOf(areaOff, RecordKind.Vmalloc, bytes, e->TypeIndex, "vmalloc area");
                        if (!descriptors.Remove(u, out nuint link))
                            Problem($"vmalloc area {Addr(areaOff)} has no descriptor");
                        else
                            CheckDescriptor(link, u, areaOff, bytes, e->TypeIndex);
                        break;
                    }
                    case UnitKind.PerCpu:
                    {
                        uint copies = (uint)PerCpuAllocator.Copies;
                        if (e->Head != u || !chunkUnits.Remove(u))
                        {
                            Problem($"unit {u} is marked per-CPU (first unit {e->Head}) but starts no per-CPU chunk");
                            break;
                        }
                        (expectTailOf, tailsLeft, tailKind) = (u, copies - 1, UnitKind.PerCpu);
                        break;
                    }
                    default:
                        Problem($"unit {u} is a {kind} outside any run");
                        break;
                }
            }
            if (tailsLeft > 0)
                Problem($"the run of unit {expectTailOf} runs past the end of kmem_map");
            foreach (uint first in descriptors.Keys)
                Problem($"the vmalloc table names an area at unit {first}, which the page map does not hold");
            foreach (uint first in chunkUnits)
                Problem($"per-CPU chunk at unit {first} is not marked per-CPU in the page map");
        }

        // A vmalloc descriptor: an allocated block of type vmarea that describes exactly its area.
        private void CheckDescriptor(nuint link, uint unit, nuint areaOff, nuint bytes, ushort typeIndex)
        {
            nuint off = BlockLink.OffsetOf(link);
            UnitInfo* e = off < KmemMap.Size ? PageMap.LookupOffset(off) : null;
            if (e == null || e->Kind != UnitKind.Slab)
            {
                Problem($"the descriptor of vmalloc area {Addr(areaOff)} is not a Kmem block");
                return;
            }
            uint slot = SizeClasses.SlotOf(e->Class, off & KmemMap.UnitMask);
            ushort owner = SlabMeta.Owner(SlabMeta.Of((uint)(off >> KmemMap.UnitShift)), slot);
            if ((owner & Redzones.TypeMask) != Heap.VmAreaType.Index)
            {
                Problem($"the descriptor {Addr(off)} of vmalloc area {Addr(areaOff)} is not an allocated {Heap.VmAreaType.ShortDesc} block (owner {TypeName(owner & Redzones.TypeMask)})");
                return;
            }
            var d = (VmStruct*)(KmemMap.Base + off);
            if ((nuint)d->Addr != (nuint)KmemMap.Base + areaOff || d->Size != bytes || d->TypeIndex != typeIndex || d->RequestedSize > bytes)
                Problem($"the descriptor of vmalloc area {Addr(areaOff)} does not match the page map (size {d->Size} vs {bytes}, type {TypeName(d->TypeIndex)} vs {TypeName(typeIndex)})");
        }

        private void CheckPerCpu(List<PerCpuAllocator.ChunkView> chunks)
        {
            nuint granule = (nuint)(KmemMap.UnitSize / PerCpuAllocator.UnitGranules);
            foreach (PerCpuAllocator.ChunkView c in chunks)
            {
                long used = c.Used.Sum(w => (long)System.Numerics.BitOperations.PopCount(w));
                if (used != PerCpuAllocator.UnitGranules - c.FreeGranules)
                    Problem($"per-CPU chunk at unit {c.FirstUnit} counts {c.FreeGranules} free granules but its bitmap has {PerCpuAllocator.UnitGranules - used}");
                var covered = new ulong[c.Used.Length];
                long objectGranules = 0;
                foreach ((uint first, PerCpuAllocator.Live live) in c.Objects)
                {
                    nuint off = ((nuint)c.FirstUnit << KmemMap.UnitShift) + first * granule;
                    if (live.Granules == 0 || first + live.Granules > PerCpuAllocator.UnitGranules)
                    {
                        Problem($"per-CPU object {Addr(off)} has {live.Granules} granules from granule {first}, outside its unit");
                        continue;
                    }
                    for (uint g = first; g < first + live.Granules; g++)
                    {
                        ulong bit = 1UL << (int)(g % 64);
                        if ((c.Used[g / 64] & bit) == 0 || (covered[g / 64] & bit) != 0)
                        {
                            Problem($"per-CPU object {Addr(off)}: granule {g} is {((covered[g / 64] & bit) != 0 ? "also another object's" : "free in the bitmap")}");
                            break;
                        }
                        covered[g / 64] |= bit;
                    }
                    objectGranules += live.Granules;
                    _perCpu++;
                    Owned(live.TypeIndex, (long)live.Granules * 16 * PerCpuAllocator.Copies, $"per-CPU object {Addr(off)}");
                    _liveKmemKeys.Add(off);
                    CheckRecordOf(off, RecordKind.PerCpu, live.Granules * granule, live.TypeIndex, "per-CPU object");
                }
                if (objectGranules != used)
                    Problem($"per-CPU chunk at unit {c.FirstUnit}: its objects hold {objectGranules} granules, its bitmap {used}");
            }
        }

        private void CheckGuarded(List<(nuint AddressComplement, nuint Size, ushort Type, long Bytes)> live, LeakRecord[] records)
        {
            var byKey = records.ToDictionary(r => r.Key);
            foreach ((nuint key, nuint size, ushort type, long bytes) in live)
            {
                _guarded++;
                Owned(type, bytes, $"guarded block 0x{~key:x}");
                if (byKey.Remove(key, out LeakRecord? r))
                {
                    if (r.Size != size || r.TypeIndex != type)
                        Problem($"the leak record of guarded block 0x{~key:x} says size {r.Size}, type {TypeName(r.TypeIndex)}; the block is {size} bytes of {TypeName(type)}");
                }
                else if (LeakTracking.Enabled)
                    Problem($"guarded block 0x{~key:x} ({TypeName(type)}) has no leak record");
            }
            foreach (LeakRecord r in byKey.Values)
                Problem($"the leak detector tracks guarded block 0x{~r.Key:x}, which is not allocated");
            _records += records.Length;
        }

        // ---- statistics ----

        private void Owned(int type, long bytes, string what)
        {
            if (TypeRegistry.ByIndex(type) is null)
            {
                Problem($"{what} belongs to type index {type}, which names no malloc type");
                return;
            }
            _typeBlocks[type]++;
            _typeBytes[type] += bytes;
        }

        // Called with ThreadCaches.Lock held (the fold takes it too; it is reentrant).
        private void CheckTypes()
        {
            foreach (MallocType t in TypeRegistry.RegisteredSnapshot())
            {
                MallocTypeStats s = TypeStatistics.Fold(t);
                long blocks = _typeBlocks[t.Index], bytes = _typeBytes[t.Index];
                if (s.InUse != blocks || s.MemUse != bytes)
                    Problem($"type {t.ShortDesc}: statistics say {s.InUse} blocks, {s.MemUse} bytes in use; its live blocks are {blocks}, {bytes} bytes");
                if (s.HighUse < s.MemUse)
                    Problem($"type {t.ShortDesc}: high use {s.HighUse} is below use {s.MemUse}");
                long charged = Volatile.Read(ref t.ChargedBytes);
                if (charged < s.MemUse)
                    Problem($"type {t.ShortDesc}: {charged} bytes are charged against its limit, fewer than the {s.MemUse} in use");
                foreach (nint tc in ThreadCaches.LiveUnderLock)
                {
                    if (ThreadCaches.Slot((byte*)tc, t.Index)->Credit < 0)
                    {
                        Problem($"type {t.ShortDesc}: a thread holds negative credit");
                        break;
                    }
                }
            }
        }

        private void CheckLargeBuckets()
        {
            for (int b = 0; b < LargeBlocks.Buckets; b++)
            {
                long inUse = Volatile.Read(ref LargeBlocks.BucketAllocs[b]) - Volatile.Read(ref LargeBlocks.BucketFrees[b]);
                if (inUse != _largeInBucket[b])
                    Problem($"large bucket {1UL << (LargeBlocks.FirstBucketShift + b)}: counts say {inUse} blocks in use, the page map holds {_largeInBucket[b]}");
            }
        }

        // ---- the leak detector's records ----

        private readonly Dictionary<nuint, LeakRecord> _recordsByKey = new();

        private void CheckRecordOf(nuint key, RecordKind kind, nuint size, ushort type, string what)
        {
            if (!_recordsByKey.TryGetValue(key, out LeakRecord? rec))
            {
                if (LeakTracking.Enabled)
                    Problem($"{what} {Addr(key)} ({TypeName(type)}) has no leak record");
                return;
            }
            if (rec.Kind != kind || rec.Size != size || rec.TypeIndex != type)
                Problem($"the leak record of {what} {Addr(key)} says {rec.Kind}, {rec.Size} bytes, type {TypeName(rec.TypeIndex)}; the object is {kind}, {size} bytes, type {TypeName(type)}");
        }

        private void CheckRecords(LeakRecord[] records)
        {
            // Records taken first; a record of an object the walks met is fine, any other names a freed object.
            foreach (LeakRecord r in records)
            {
                _records++;
                if (!_liveKmemKeys.Contains(r.Key))
                    Problem($"the leak detector tracks {r.Kind} object {Addr(r.Key)} ({TypeName(r.TypeIndex)}), which is not allocated");
            }
        }
    }
}

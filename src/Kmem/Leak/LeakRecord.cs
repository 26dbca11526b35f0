// Leak/LeakRecord.cs — the detector's record of an object that has no slab side-table entry: a large block, a vmalloc
// area, a per-CPU object, foreign memory registered with Kmemleak.Alloc, or a physical object. Keys are kmem_map
// offsets, complemented addresses or complemented physical addresses — never a raw pointer the scan could mistake for a reference.
namespace Kmem.Leak;

internal enum RecordKind : byte { Large, Vmalloc, PerCpu, Foreign, Phys }

internal sealed class LeakRecord
{
    public RecordKind Kind;
    /// <summary>Large/Vmalloc/PerCpu: kmem_map offset of the start; Foreign: ~address; Phys: ~physical address.</summary>
    public nuint Key;
    public nuint Size;
    /// <summary>References needed (1 for most, 2 for vmalloc); −1 and 0 are the Black and Root states.</summary>
    public int MinCount = 1;
    public LeakState State;
    public uint Crc = LeakStates.NoCrc;
    public uint Context;
    public ushort TypeIndex;
    public uint Thread;      // allocating thread ordinal (birth order)
    public uint Stamp;       // the thread's sequence number at allocation
    public long BirthMs = Leak.LeakScanner.NowMs;
    public List<(nuint Offset, nuint Length)>? Areas;
    /// <summary>A guard-page block (DIAGNOSTIC): read like foreign memory, but Kmem's own block — reported as a Block,
    /// never unregistered or split by the kmemleak API (which paints it instead).</summary>
    public bool Guarded;
    // Scan state.
    public int Count;
    public bool Gray;
}

// Phys/PhysRegion.cs — the process's physical address space: shared-memory regions (memfd on Linux) each given a stable
// 64-bit physical base that never changes or overlaps another region; a region can be mapped and unmapped at will, and
// a small first-fit allocator inside it hands out physical addresses. This is where kmemleak's *_phys calls get memory.
using Kmem.Platform;

namespace Kmem;

/// <summary>
/// A region of "physical" memory: a fixed <see cref="Base"/> in Kmem's physical address space, mapped at a virtual address
/// that may differ on every <see cref="Map"/>. Objects inside are known by physical address (<see cref="Alloc"/>).
/// </summary>
public sealed unsafe class PhysRegion : IDisposable
{
    /// <summary>The first physical address handed out. It lies above every user-space virtual address (2^47), so a
    /// physical address is never mistaken for a pointer, and its upper half is an unlikely integer, so two small ints side
    /// by side (0x1_0000_0000 is [0, 1]) are never mistaken for a physical address by the leak scan.</summary>
    public static ulong FirstBase => 0x0009_C3A5_0000_0000;
    private const nuint Align = 16;

    private static readonly object s_lock = new();
    private static readonly List<PhysRegion> s_regions = new(); // ordered by Base
    private static ulong s_nextBase = 0x0009_C3A5_0000_0000; // FirstBase

    private readonly object _lock = new();
    private nint _handle;
    private nuint _mappedComplement; // the mapping's address, complemented (0 = not mapped); never a raw pointer
    private readonly Pages.FreeRuns _free;
    private readonly Dictionary<nuint, nuint> _live = new();       // offset → length
    private nuint _allocated;

    private PhysRegion(nint handle, ulong physBase, nuint size)
    {
        _handle = handle;
        _baseComplement = ~physBase;
        Size = size;
        _free = new Pages.FreeRuns(size);
    }

    /// <summary>Reserves a region of <paramref name="size"/> bytes (rounded up to pages) and gives it a physical base.</summary>
    public static PhysRegion Create(nuint size)
    {
        nuint page = (nuint)Environment.SystemPageSize;
        if (size == 0 || size > (nuint)1 << 40)
            throw new ArgumentOutOfRangeException(nameof(size), size, "a physical region is 1 byte to 1 TiB");
        size = (size + page - 1) & ~(page - 1);
        nint handle = OsPages.Provider.CreateSharedMemory(size);
        if (handle == 0)
            throw new OutOfMemoryException($"Kmem: the OS refused a shared-memory region of {size} bytes.");
        lock (s_lock)
        {
            var region = new PhysRegion(handle, s_nextBase, size);
            // A gap of one page between regions keeps every base distinct and ranges from touching.
            s_nextBase += (ulong)size + (ulong)page;
            s_regions.Add(region);
            return region;
        }
    }

    /// <summary>The region's physical base: stable for its whole life, never shared with another region.</summary>
    public ulong Base => ~_baseComplement;
    private readonly ulong _baseComplement; // complemented, like every address Kmem keeps (a word holding it refers to an object)

    /// <summary>Bytes in the region (whole pages).</summary>
    public nuint Size { get; }

    /// <summary>Whether the region is mapped now.</summary>
    public bool IsMapped => Volatile.Read(ref _mappedComplement) != 0;

    /// <summary>Whether <see cref="Dispose"/> was called.</summary>
    public bool IsDisposed => _handle == 0;

    /// <summary>Bytes handed out by <see cref="Alloc"/> and not freed.</summary>
    public nuint Allocated { get { lock (_lock) return _allocated; } }

    /// <summary>The current virtual address of the region, or null when it is not mapped.</summary>
    public void* VirtualAddress
    {
        get
        {
            nuint c = Volatile.Read(ref _mappedComplement);
            return c == 0 ? null : (void*)~c;
        }
    }

    /// <summary>Maps the region (the OS picks the virtual address) and returns that address.</summary>
    public void* Map()
    {
        lock (_lock)
        {
            ThrowIfDisposed();
            if (_mappedComplement != 0)
                throw new InvalidOperationException($"physical region 0x{Base:x} is already mapped");
            nint p = OsPages.Provider.MapShared(_handle, Size);
            if (p == 0)
                throw new OutOfMemoryException($"Kmem: the OS refused to map physical region 0x{Base:x}.");
            Pages.OwnRegions.Add((void*)p, Size); // Kmem's arena: scanned through registered objects only
            Volatile.Write(ref _mappedComplement, ~(nuint)p);
            return (void*)p;
        }
    }

    /// <summary>Unmaps the region; its contents and physical addresses stay.</summary>
    public void Unmap()
    {
        lock (_lock)
        {
            ThrowIfDisposed();
            if (_mappedComplement == 0)
                throw new InvalidOperationException($"physical region 0x{Base:x} is not mapped");
            nint p = (nint)~_mappedComplement;
            lock (Pages.KmemMap.UnmapGate)
            {
                Volatile.Write(ref _mappedComplement, 0);
                OsPages.Provider.UnmapShared(p, Size);
                Pages.OwnRegions.Remove((void*)p, Size);
            }
        }
    }

    /// <summary>
    /// Hands out <paramref name="size"/> bytes (16-byte aligned) inside the region and returns their physical address,
    /// or 0 when the region has no room.
    /// </summary>
    public ulong Alloc(nuint size)
    {
        if (size == 0 || size > Size)
            throw new ArgumentOutOfRangeException(nameof(size), size, $"1 to {Size} bytes fit in this region");
        nuint need = (size + Align - 1) & ~(Align - 1);
        lock (_lock)
        {
            ThrowIfDisposed();
            long off = _free.Take(need);
            if (off >= 0)
            {
                _live.Add((nuint)off, need);
                _allocated += need;
                return Base + (ulong)off;
            }
            return 0;
        }
    }

    /// <summary>Gives back what <see cref="Alloc"/> handed out at <paramref name="phys"/>.</summary>
    public void Free(ulong phys)
    {
        lock (_lock)
        {
            ThrowIfDisposed();
            nuint off = (nuint)(phys - Base);
            if (phys < Base || phys >= Base + Size || !_live.Remove(off, out nuint len))
                throw new ArgumentException($"0x{phys:x} was not handed out by physical region 0x{Base:x} (or is already free)", nameof(phys));
            _allocated -= len;
            _free.Put(off, len);
        }
    }

    /// <summary>Unmaps the region and releases its memory. Its physical range is never given to another region.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_handle == 0)
                return;
            if (_mappedComplement != 0)
            {
                lock (Pages.KmemMap.UnmapGate)
                {
                    OsPages.Provider.UnmapShared((nint)~_mappedComplement, Size);
                    Pages.OwnRegions.Remove((void*)~_mappedComplement, Size);
                    _mappedComplement = 0;
                }
            }
            OsPages.Provider.CloseSharedMemory(_handle);
            _handle = 0;
        }
        lock (s_lock)
            s_regions.Remove(this);
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_handle == 0, this);

    /// <summary>The region holding <paramref name="phys"/>, or null.</summary>
    internal static PhysRegion? Containing(ulong phys)
    {
        lock (s_lock)
        {
            foreach (PhysRegion r in s_regions)
                if (phys >= r.Base && phys - r.Base < (ulong)r.Size)
                    return r;
        }
        return null;
    }

    /// <summary>The mapped region whose mapping holds <paramref name="p"/>, or null.</summary>
    internal static PhysRegion? Mapping(void* p)
    {
        lock (s_lock)
        {
            foreach (PhysRegion r in s_regions)
            {
                byte* v = (byte*)r.VirtualAddress;
                if (v != null && (byte*)p >= v && (nuint)((byte*)p - v) < r.Size)
                    return r;
            }
        }
        return null;
    }

    /// <summary>Every live region, oldest first (for vmstat).</summary>
    internal static PhysRegion[] Snapshot()
    {
        lock (s_lock)
            return s_regions.ToArray();
    }
}

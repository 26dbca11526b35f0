// BadInputMatrixTests.cs — the bad-input matrix: every public entry point of Kmem fed nulls, foreign, interior and freed
// pointers, zero and impossible sizes, bad counts, overlaps, garbage commands and disposed or detached objects. Each row
// names the entry point, the input and the documented answer (exception type and message, or "ignored"/null); after
// every row the heap is healthy and still allocates. A reflection test fails when a public method has no row.
using System.Buffers;
using System.Reflection;
using System.Runtime.InteropServices;
using Kmem.Pages;
using Kmem.Pools;
using Xunit;
using Xunit.Abstractions;

namespace Kmem.Tests;

[Collection(GlobalStateCollection.Name)] // a few rows touch process-wide settings (rejected values must change nothing)
public sealed unsafe class BadInputMatrixTests(ITestOutputHelper output)
{
    /// <summary>One bad input: <paramref name="Throws"/> null means the documented answer is no error (the call is
    /// ignored or returns null/0; <paramref name="Act"/> asserts that itself).</summary>
    private sealed record Row(string EntryPoint, string Input, Action Act, Type? Throws, string Message = "");

    private static Row Panics(string entry, string input, Action act, string message) => new(entry, input, act, typeof(KmemPanicException), message);
    private static Row Throws<T>(string entry, string input, Action act, string message = "") where T : Exception => new(entry, input, act, typeof(T), message);
    private static Row Fine(string entry, string input, Action act) => new(entry, input, act, null);

    // Public methods that take no input that could be bad (or are plain data), with the reason.
    private static readonly Dictionary<string, string> NoBadInput = new()
    {
        ["Heap.TypeStats"] = "no arguments",
        ["Heap.FormatVmstat"] = "no arguments",
        ["Heap.Verify"] = "no arguments",
        ["Kmemleak.Read"] = "no arguments",
        ["Kmemleak.Current"] = "no arguments",
        ["Kmemleak.Scan"] = "no arguments",
        ["KmemOptions.ClearGuardPages"] = "no arguments",
        ["KmemOptions.set_Diagnostic"] = "a bool: both values are valid",
        ["KmemOptions.set_DiagnosticRedzones"] = "a bool: both values are valid",
        ["MallocType.set_Diagnostic"] = "a bool: both values are valid",
        ["MallocType.GetStats"] = "no arguments",
        ["MallocBatch.get_Type"] = "no arguments",
        ["KmemDiagnostics.set_WriteToStandardError"] = "a bool: both values are valid",
        ["LeakScanResult.Summary"] = "no arguments",
        ["PerCpuPtr.CurrentCpu"] = "no arguments",
        ["KmemPanicException..ctor"] = "an exception's constructors",
        ["LeakScanStats.*"] = "a plain data record",
        ["MallocTypeStats.*"] = "a plain data record",
    };

    private static string Hex(void* p) => "0x" + ((nuint)p).ToString("x");

    private readonly struct Ptr(void* p)
    {
        public readonly nuint C = ~(nuint)p; // complemented: the test keeps no raw address of a tracked block
        public byte* P => (byte*)~C;
    }

    private static List<Row> Rows(Ptr small, Ptr large, Ptr area, PerCpuPtr pcpu, Ptr foreign, Ptr registered, MallocType type,
        MallocType other, MallocType detached, MallocType never, PhysRegion region, ulong phys, PhysRegion disposed,
        MallocType poolType, KmemMemoryPool pool)
    {
        void* Foreign = foreign.P;
        string T = type.ShortDesc;
        var rows = new List<Row>();

        // ---- Heap.Malloc ----
        rows.Add(Panics("Heap.Malloc", "null type", () => Heap.Malloc(64, null!), "malloc - bogus type"));
        rows.Add(Panics("Heap.Malloc", "detached type", () => Heap.Malloc(64, detached), "malloc - bogus type"));
        rows.Add(Panics("Heap.Malloc", "never-attached type", () => Heap.Malloc(64, never), "malloc - bogus type"));
        rows.Add(Throws<ArgumentOutOfRangeException>("Heap.Malloc", "unknown flags 0x40", () => Heap.Malloc(64, type, (MallocFlags)0x40), "unknown malloc flags"));
        rows.Add(Panics("Heap.Malloc", "size nuint.MaxValue", () => Heap.Malloc(nuint.MaxValue, type), "malloc: allocation too large"));
        rows.Add(Panics("Heap.Malloc", "size nuint.MaxValue - 4095 (rounds past the top)", () => Heap.Malloc(nuint.MaxValue - 4095, type), "malloc: allocation too large"));
        rows.Add(Panics("Heap.Malloc", "size nuint.MaxValue - 4096 (rounds to the top page)", () => Heap.Malloc(nuint.MaxValue - 4096, type), "malloc: allocation too large"));
        rows.Add(Panics("Heap.Malloc", "size kmem_map + 1", () => Heap.Malloc(KmemMap.Size + 1, type), "malloc: allocation too large"));
        rows.Add(Panics("Heap.Malloc", "size nuint.MaxValue, NoWait", () => Heap.Malloc(nuint.MaxValue, type, MallocFlags.NoWait), "malloc: allocation too large"));
        rows.Add(Fine("Heap.Malloc", "size nuint.MaxValue, CanFail: null", () => Assert.True(Heap.Malloc(nuint.MaxValue, type, MallocFlags.CanFail) == null)));
        rows.Add(Fine("Heap.Malloc", "size nuint.MaxValue - 4095, CanFail | NoWait: null",
            () => Assert.True(Heap.Malloc(nuint.MaxValue - 4095, type, MallocFlags.CanFail | MallocFlags.NoWait) == null)));
        rows.Add(Fine("Heap.Malloc", "size 0: the smallest block", () =>
        {
            void* p = Heap.Malloc(0, type);
            Assert.True(p != null);
            Heap.Free(p, type);
        }));

        // ---- Heap.Realloc ----
        rows.Add(Panics("Heap.Realloc", "null type", () => Heap.Realloc(small.P, 500, null!), "malloc - bogus type"));
        rows.Add(Panics("Heap.Realloc", "null type, size 0 (a free)", () => Heap.Realloc(small.P, 0, null!), "free: bogus type (null)"));
        rows.Add(Panics("Heap.Realloc", "detached type", () => Heap.Realloc(small.P, 500, detached), "malloc - bogus type"));
        rows.Add(Panics("Heap.Realloc", "foreign pointer", () => Heap.Realloc(Foreign, 500, type), $"realloc: addr {Hex(Foreign)} not within kmem_map"));
        rows.Add(Panics("Heap.Realloc", "interior pointer", () => Heap.Realloc(small.P + 16, 500, type), $"realloc: unaligned addr {Hex(small.P + 16)}, size 112, type {T}, mask 111"));
        rows.Add(Panics("Heap.Realloc", "interior pointer of a large block", () => Heap.Realloc(large.P + 4096, 500_000, type), $"realloc: unaligned addr {Hex(large.P + 4096)}"));
        rows.Add(Panics("Heap.Realloc", "freed block", () =>
        {
            void* p = Heap.Malloc(48, type);
            Heap.Free(p, type);
            Heap.Realloc(p, 500, type);
        }, "realloc: duplicated free"));
        rows.Add(Panics("Heap.Realloc", "block of another type", () => Heap.Realloc(small.P, 500, other), $"belongs to type {T}, not {other.ShortDesc}"));
        rows.Add(Panics("Heap.Realloc", "vmalloc'd area", () => Heap.Realloc(area.P, 500_000, type), "is vmalloc'd memory; use Vfree"));
        rows.Add(Panics("Heap.Realloc", "size nuint.MaxValue", () => Heap.Realloc(small.P, nuint.MaxValue, type), "malloc: allocation too large"));
        rows.Add(Panics("Heap.Realloc", "large block to nuint.MaxValue - 4095", () => Heap.Realloc(large.P, nuint.MaxValue - 4095, type), "malloc: allocation too large"));
        rows.Add(Fine("Heap.Realloc", "size nuint.MaxValue, CanFail: null, block kept",
            () => Assert.True(Heap.Realloc(small.P, nuint.MaxValue, type, MallocFlags.CanFail) == null)));
        rows.Add(Throws<ArgumentOutOfRangeException>("Heap.Realloc", "unknown flags 0x40", () => Heap.Realloc(small.P, 500, type, (MallocFlags)0x40), "unknown malloc flags"));

        // ---- Heap.Batch and MallocBatch ----
        rows.Add(Panics("Heap.Batch", "null type", () => Heap.Batch(null!), "malloc - bogus type"));
        rows.Add(Panics("Heap.Batch", "detached type", () => Heap.Batch(detached), "malloc - bogus type"));
        rows.Add(Panics("Heap.Batch", "never-attached type", () => Heap.Batch(never), "malloc - bogus type"));
        rows.Add(Panics("MallocBatch.Malloc", "default instance", () => default(MallocBatch).Malloc(64), "malloc - bogus type"));
        rows.Add(Throws<ArgumentOutOfRangeException>("MallocBatch.Malloc", "unknown flags 0x40", () => Heap.Batch(type).Malloc(64, (MallocFlags)0x40), "unknown malloc flags"));
        rows.Add(Panics("MallocBatch.Malloc", "size nuint.MaxValue", () => Heap.Batch(type).Malloc(nuint.MaxValue), "malloc: allocation too large"));
        rows.Add(Fine("MallocBatch.Malloc", "size nuint.MaxValue, CanFail: null", () => Assert.True(Heap.Batch(type).Malloc(nuint.MaxValue, MallocFlags.CanFail) == null)));
        rows.Add(Panics("MallocBatch.Malloc", "type detached after the batch was made", () =>
        {
            MallocType t = Types.New();
            MallocBatch b = Heap.Batch(t);
            t.Detach();
            b.Malloc(64);
        }, "malloc - bogus type"));
        rows.Add(Panics("MallocBatch.Free", "null", () => Heap.Batch(type).Free(null), "free: null addr (free(9) does not accept NULL)"));
        rows.Add(Panics("MallocBatch.Free", "default instance", () => default(MallocBatch).Free(small.P), "free: bogus type (null)"));
        rows.Add(Panics("MallocBatch.Free", "foreign pointer (NativeMemory)", () => Heap.Batch(type).Free(Foreign), $"free: addr {Hex(Foreign)} not within kmem_map"));
        rows.Add(Panics("MallocBatch.Free", "interior pointer", () => Heap.Batch(type).Free(small.P + 16), $"free: unaligned addr {Hex(small.P + 16)}, size 112, type {T}, mask 111"));
        rows.Add(Panics("MallocBatch.Free", "freed block", () =>
        {
            MallocBatch b = Heap.Batch(type);
            void* p = b.Malloc(48);
            b.Free(p);
            b.Free(p);
        }, "free: duplicated free"));
        rows.Add(Panics("MallocBatch.Free", "block of another type", () => Heap.Batch(other).Free(small.P), $"free: addr {Hex(small.P)} belongs to type {T}, not {other.ShortDesc}"));
        rows.Add(Panics("MallocBatch.Free", "vmalloc'd area", () => Heap.Batch(type).Free(area.P), $"free: addr {Hex(area.P)} is vmalloc'd memory; use Vfree"));

        // ---- Heap.Free ----
        rows.Add(Panics("Heap.Free", "null", () => Heap.Free(null, type), "free: null addr (free(9) does not accept NULL)"));
        rows.Add(Panics("Heap.Free", "null type", () => Heap.Free(small.P, null!), "free: bogus type (null)"));
        rows.Add(Panics("Heap.Free", "foreign pointer (NativeMemory)", () => Heap.Free(Foreign, type), $"free: addr {Hex(Foreign)} not within kmem_map"));
        rows.Add(Panics("Heap.Free", "stack address", () =>
        {
            long local = 0;
            Heap.Free(&local, type);
        }, "not within kmem_map"));
        rows.Add(Panics("Heap.Free", "interior pointer", () => Heap.Free(small.P + 16, type), $"free: unaligned addr {Hex(small.P + 16)}, size 112, type {T}, mask 111"));
        rows.Add(Panics("Heap.Free", "misaligned pointer", () => Heap.Free(small.P + 1, type), $"free: unaligned addr {Hex(small.P + 1)}, size 112"));
        rows.Add(Panics("Heap.Free", "interior pointer of a large block", () => Heap.Free(large.P + 8192, type), $"free: unaligned addr {Hex(large.P + 8192)}, size 200704, type {T}, mask 4095"));
        rows.Add(Panics("Heap.Free", "freed block", () =>
        {
            void* p = Heap.Malloc(48, type);
            Heap.Free(p, type);
            Heap.Free(p, type);
        }, "free: duplicated free"));
        rows.Add(Panics("Heap.Free", "freed large block", () =>
        {
            void* p = Heap.Malloc(100_000, type);
            Heap.Free(p, type);
            Heap.Free(p, type);
        }, "free: duplicated free"));
        rows.Add(Panics("Heap.Free", "block of another type", () => Heap.Free(small.P, other), $"free: addr {Hex(small.P)} belongs to type {T}, not {other.ShortDesc}"));
        rows.Add(Panics("Heap.Free", "vmalloc'd area", () => Heap.Free(area.P, type), $"free: addr {Hex(area.P)} is vmalloc'd memory; use Vfree"));
        rows.Add(Panics("Heap.Free", "per-CPU cookie", () => Heap.Free(pcpu.Cookie, type), "is per-CPU memory; use FreePercpu"));
        rows.Add(Panics("Heap.Free", "kmem_map address never handed out (unit 0)", () => Heap.Free(KmemMap.Base + 4096, type), "was never allocated by malloc"));
        rows.Add(Panics("Heap.Free", "kmem_map's last bytes", () => Heap.Free(KmemMap.Base + KmemMap.Size - 16, type), "was never allocated by malloc"));
        rows.Add(Panics("Heap.Free", "one past kmem_map", () => Heap.Free(KmemMap.Base + KmemMap.Size, type), "not within kmem_map"));
        rows.Add(Fine("Heap.Free", "block of a type detached since: accounted to it", () =>
        {
            MallocType t = Types.New();
            void* p = Heap.Malloc(64, t);
            t.Detach();
            Heap.Free(p, t);
            Assert.Equal(0, t.GetStats().InUse);
        }));

        // ---- Heap.Roundup ----
        rows.Add(Throws<ArgumentOutOfRangeException>("Heap.Roundup", "nuint.MaxValue", () => Heap.Roundup(nuint.MaxValue), "no block can be that large"));
        rows.Add(Throws<ArgumentOutOfRangeException>("Heap.Roundup", "nuint.MaxValue - 4095", () => Heap.Roundup(nuint.MaxValue - 4095), "no block can be that large"));
        rows.Add(Fine("Heap.Roundup", "0: the smallest class", () => Assert.Equal((nuint)16, Heap.Roundup(0))));
        rows.Add(Fine("Heap.Roundup", "nuint.MaxValue - 4096: the top page, no wrap", () => Assert.Equal(nuint.MaxValue - 4095, Heap.Roundup(nuint.MaxValue - 4096))));

        // ---- vmalloc ----
        rows.Add(Throws<ArgumentOutOfRangeException>("Heap.Vmalloc", "size 0", () => Heap.Vmalloc(0, type), "vmalloc needs at least one byte"));
        rows.Add(Fine("Heap.Vmalloc", "size nuint.MaxValue: null", () => Assert.True(Heap.Vmalloc(nuint.MaxValue, type) == null)));
        rows.Add(Fine("Heap.Vmalloc", "size kmem_map: null", () => Assert.True(Heap.Vmalloc(KmemMap.Size, type) == null)));
        rows.Add(Panics("Heap.Vmalloc", "null type", () => Heap.Vmalloc(4096, null!), "malloc - bogus type"));
        rows.Add(Panics("Heap.Vmalloc", "detached type", () => Heap.Vmalloc(4096, detached), "malloc - bogus type"));
        rows.Add(Panics("Heap.Vfree", "null", () => Heap.Vfree(null), "vfree: null addr"));
        rows.Add(Panics("Heap.Vfree", "foreign pointer", () => Heap.Vfree(Foreign), $"vfree: addr {Hex(Foreign)} is not the start of a vmalloc area"));
        rows.Add(Panics("Heap.Vfree", "interior pointer", () => Heap.Vfree(area.P + 4096), "is not the start of a vmalloc area"));
        rows.Add(Panics("Heap.Vfree", "malloc'd block", () => Heap.Vfree(small.P), "is not the start of a vmalloc area"));
        rows.Add(Panics("Heap.Vfree", "freed area", () =>
        {
            void* a = Heap.Vmalloc(4096, type);
            Heap.Vfree(a);
            Heap.Vfree(a);
        }, "is not the start of a vmalloc area"));
        rows.Add(Fine("Heap.FindVmArea", "null, foreign, guard page, malloc'd block: none", () =>
        {
            Assert.Null(Heap.FindVmArea(null));
            Assert.Null(Heap.FindVmArea(Foreign));
            Assert.Null(Heap.FindVmArea(area.P - 1));
            Assert.Null(Heap.FindVmArea(small.P));
        }));
        VmArea none = default;
        rows.Add(Throws<InvalidOperationException>("VmArea.get_Addr", "default VmArea", () => _ = none.Addr, "null vmalloc area"));
        rows.Add(Throws<InvalidOperationException>("VmArea.get_Size", "default VmArea", () => _ = none.Size, "null vmalloc area"));
        rows.Add(Throws<InvalidOperationException>("VmArea.get_RequestedSize", "default VmArea", () => _ = none.RequestedSize, "null vmalloc area"));
        rows.Add(Throws<InvalidOperationException>("VmArea.get_Type", "default VmArea", () => _ = none.Type, "null vmalloc area"));
        rows.Add(Fine("VmArea.ToString", "default VmArea", () => Assert.Contains("null", none.ToString())));

        // ---- per-CPU ----
        rows.Add(Throws<ArgumentOutOfRangeException>("Heap.AllocPercpu", "size 0", () => Heap.AllocPercpu(0, 16, type), "a per-CPU object is 1 to"));
        rows.Add(Throws<ArgumentOutOfRangeException>("Heap.AllocPercpu", "size 64 KiB + 1", () => Heap.AllocPercpu(65537, 16, type), "a per-CPU object is 1 to"));
        rows.Add(Throws<ArgumentOutOfRangeException>("Heap.AllocPercpu", "size nuint.MaxValue", () => Heap.AllocPercpu(nuint.MaxValue, 16, type), "a per-CPU object is 1 to"));
        rows.Add(Throws<ArgumentOutOfRangeException>("Heap.AllocPercpu", "align 0", () => Heap.AllocPercpu(64, 0, type), "alignment must be a power of two"));
        rows.Add(Throws<ArgumentOutOfRangeException>("Heap.AllocPercpu", "align 3", () => Heap.AllocPercpu(64, 3, type), "alignment must be a power of two"));
        rows.Add(Throws<ArgumentOutOfRangeException>("Heap.AllocPercpu", "align 8192", () => Heap.AllocPercpu(64, 8192, type), "alignment must be a power of two"));
        rows.Add(Throws<ArgumentOutOfRangeException>("Heap.AllocPercpu", "align nuint.MaxValue", () => Heap.AllocPercpu(64, nuint.MaxValue, type), "alignment must be a power of two"));
        rows.Add(Panics("Heap.AllocPercpu", "null type", () => Heap.AllocPercpu(64, 16, null!), "malloc - bogus type"));
        rows.Add(Panics("Heap.AllocPercpu", "detached type", () => Heap.AllocPercpu(64, 16, detached), "malloc - bogus type"));
        rows.Add(Panics("Heap.FreePercpu", "null handle", () => Heap.FreePercpu(default, type), "free_percpu: null pointer"));
        rows.Add(Panics("Heap.FreePercpu", "null type", () => Heap.FreePercpu(pcpu, null!), "free_percpu: bogus type (null)"));
        rows.Add(Panics("Heap.FreePercpu", "foreign cookie", () => Heap.FreePercpu(new PerCpuPtr(Foreign), type), $"free_percpu: {Hex(Foreign)} is not a live per-CPU object"));
        rows.Add(Panics("Heap.FreePercpu", "malloc'd block as cookie", () => Heap.FreePercpu(new PerCpuPtr(small.P), type), "is not a live per-CPU object"));
        rows.Add(Panics("Heap.FreePercpu", "interior cookie", () => Heap.FreePercpu(new PerCpuPtr((byte*)pcpu.Cookie + 16), type), "is not a live per-CPU object"));
        rows.Add(Panics("Heap.FreePercpu", "freed object", () =>
        {
            PerCpuPtr q = Heap.AllocPercpu(32, 16, type);
            Heap.FreePercpu(q, type);
            Heap.FreePercpu(q, type);
        }, "is not a live per-CPU object"));
        rows.Add(Panics("Heap.FreePercpu", "object of another type", () => Heap.FreePercpu(pcpu, other), $"belongs to type {T}, not {other.ShortDesc}"));
        rows.Add(Throws<ArgumentOutOfRangeException>("PerCpuPtr.ForCpu", "cpu -1", () => pcpu.ForCpu(-1), "CPUs are numbered 0 to"));
        rows.Add(Throws<ArgumentOutOfRangeException>("PerCpuPtr.ForCpu", "cpu = Copies", () => pcpu.ForCpu(PerCpuPtr.Copies), "CPUs are numbered 0 to"));
        rows.Add(Throws<InvalidOperationException>("PerCpuPtr.ForCpu", "null handle", () => default(PerCpuPtr).ForCpu(0), "null per-CPU pointer"));
        rows.Add(Throws<InvalidOperationException>("PerCpuPtr.ThisCpu", "null handle", () => default(PerCpuPtr).ThisCpu(), "null per-CPU pointer"));

        // ---- physical addresses ----
        rows.Add(Fine("Heap.PhysToVirt", "0, ulong.MaxValue, a disposed region's base: null", () =>
        {
            Assert.True(Heap.PhysToVirt(0) == null);
            Assert.True(Heap.PhysToVirt(ulong.MaxValue) == null);
            Assert.True(Heap.PhysToVirt(disposed.Base) == null);
        }));
        rows.Add(Fine("Heap.VirtToPhys", "null, foreign, malloc'd block: 0", () =>
        {
            Assert.Equal(0UL, Heap.VirtToPhys(null));
            Assert.Equal(0UL, Heap.VirtToPhys(Foreign));
            Assert.Equal(0UL, Heap.VirtToPhys(small.P));
        }));
        rows.Add(Throws<ArgumentOutOfRangeException>("PhysRegion.Create", "size 0", () => PhysRegion.Create(0), "a physical region is 1 byte to 1 TiB"));
        rows.Add(Throws<ArgumentOutOfRangeException>("PhysRegion.Create", "size 1 TiB + 1", () => PhysRegion.Create(((nuint)1 << 40) + 1), "a physical region is 1 byte to 1 TiB"));
        rows.Add(Throws<ArgumentOutOfRangeException>("PhysRegion.Create", "size nuint.MaxValue", () => PhysRegion.Create(nuint.MaxValue), "a physical region is 1 byte to 1 TiB"));
        rows.Add(Throws<ArgumentOutOfRangeException>("PhysRegion.Alloc", "size 0", () => region.Alloc(0), "fit in this region"));
        rows.Add(Throws<ArgumentOutOfRangeException>("PhysRegion.Alloc", "size above the region", () => region.Alloc(region.Size + 1), "fit in this region"));
        rows.Add(Throws<ArgumentOutOfRangeException>("PhysRegion.Alloc", "size nuint.MaxValue", () => region.Alloc(nuint.MaxValue), "fit in this region"));
        rows.Add(Throws<ObjectDisposedException>("PhysRegion.Alloc", "disposed region", () => disposed.Alloc(16)));
        rows.Add(Throws<ArgumentException>("PhysRegion.Free", "address never handed out", () => region.Free(phys + 16), "was not handed out by physical region"));
        rows.Add(Throws<ArgumentException>("PhysRegion.Free", "address 0", () => region.Free(0), "was not handed out by physical region"));
        rows.Add(Throws<ArgumentException>("PhysRegion.Free", "ulong.MaxValue", () => region.Free(ulong.MaxValue), "was not handed out by physical region"));
        rows.Add(Throws<ArgumentException>("PhysRegion.Free", "freed address", () =>
        {
            ulong q = region.Alloc(32);
            region.Free(q);
            region.Free(q);
        }, "(or is already free)"));
        rows.Add(Throws<ObjectDisposedException>("PhysRegion.Free", "disposed region", () => disposed.Free(disposed.Base)));
        rows.Add(Throws<InvalidOperationException>("PhysRegion.Map", "mapped region", () => region.Map(), "is already mapped"));
        rows.Add(Throws<ObjectDisposedException>("PhysRegion.Map", "disposed region", () => disposed.Map()));
        rows.Add(Throws<InvalidOperationException>("PhysRegion.Unmap", "unmapped region", () =>
        {
            using PhysRegion r = PhysRegion.Create(4096);
            r.Unmap();
        }, "is not mapped"));
        rows.Add(Throws<ObjectDisposedException>("PhysRegion.Unmap", "disposed region", () => disposed.Unmap()));
        rows.Add(Fine("PhysRegion.Dispose", "disposed region: nothing", () => disposed.Dispose()));

        // ---- MallocType ----
        rows.Add(Throws<ArgumentNullException>("MallocType..ctor", "null name", () => new MallocType(null!)));
        rows.Add(Throws<ArgumentNullException>("MallocType..ctor", "null description", () => new MallocType("x", null!)));
        rows.Add(Throws<ArgumentException>("MallocType..ctor", "empty name", () => new MallocType(""), "1 to 64 printable characters"));
        rows.Add(Throws<ArgumentException>("MallocType..ctor", "65-character name", () => new MallocType(new string('n', 65)), "1 to 64 printable characters"));
        rows.Add(Throws<ArgumentException>("MallocType..ctor", "name with a newline", () => new MallocType("a\nb"), "1 to 64 printable characters"));
        rows.Add(Throws<ArgumentOutOfRangeException>("MallocType..ctor", "limit ulong.MaxValue", () => new MallocType("x", "", ulong.MaxValue), "limit must be at most long.MaxValue bytes"));
        rows.Add(Panics("MallocType.SetLimit", "detached type", () => detached.SetLimit(100), $"malloc_type_setlimit: type '{detached.ShortDesc}' is not attached"));
        rows.Add(Panics("MallocType.SetLimit", "never-attached type", () => never.SetLimit(100), $"malloc_type_setlimit: type '{never.ShortDesc}' is not attached"));
        rows.Add(Throws<ArgumentOutOfRangeException>("MallocType.SetLimit", "limit ulong.MaxValue", () => type.SetLimit(ulong.MaxValue), "limit must be at most long.MaxValue bytes"));
        rows.Add(Panics("MallocType.Attach", "attached type", () => type.Attach(), $"malloc_type_attach: '{T}' already on list"));
        rows.Add(Panics("MallocType.Detach", "never-attached type", () => never.Detach(), $"malloc_type_detach: '{never.ShortDesc}' not on list"));
        rows.Add(Panics("MallocType.Detach", "detached type", () => detached.Detach(), $"malloc_type_detach: '{detached.ShortDesc}' not on list"));

        // ---- KmemOptions (rejected values change nothing) ----
        rows.Add(Throws<ArgumentOutOfRangeException>("KmemOptions.set_Panic", "(PanicMode)7", () => KmemOptions.Panic = (PanicMode)7, "unknown panic mode"));
        rows.Add(Throws<InvalidOperationException>("KmemOptions.set_MinBucketShift", "after the first allocation", () => KmemOptions.MinBucketShift = 5, "before the first allocation"));
        rows.Add(Throws<InvalidOperationException>("KmemOptions.set_MinBucketShift", "-1 after the first allocation", () => KmemOptions.MinBucketShift = -1, "before the first allocation"));
        rows.Add(Throws<InvalidOperationException>("KmemOptions.set_KmemMapSize", "after the first allocation", () => KmemOptions.KmemMapSize = 1UL << 30, "before the first allocation"));
        rows.Add(Throws<ArgumentOutOfRangeException>("KmemOptions.set_DiagnosticPoison", "(PoisonExtent)9", () => KmemOptions.DiagnosticPoison = (PoisonExtent)9, "unknown poison extent"));
        rows.Add(Throws<ArgumentOutOfRangeException>("KmemOptions.set_FailNoWaitEvery", "-1", () => KmemOptions.FailNoWaitEvery = -1, "FailNoWaitEvery"));
        rows.Add(Throws<ArgumentOutOfRangeException>("KmemOptions.set_FailNoWaitEvery", "int.MinValue", () => KmemOptions.FailNoWaitEvery = int.MinValue, "FailNoWaitEvery"));
        rows.Add(Throws<ArgumentOutOfRangeException>("KmemOptions.set_FailPageRequestsEvery", "-1", () => KmemOptions.FailPageRequestsEvery = -1, "FailPageRequestsEvery"));
        rows.Add(Throws<ArgumentOutOfRangeException>("KmemOptions.set_QuarantineBlocks", "0", () => KmemOptions.QuarantineBlocks = 0, "QuarantineBlocks must be 1 to"));
        rows.Add(Throws<ArgumentOutOfRangeException>("KmemOptions.set_QuarantineBlocks", "int.MaxValue", () => KmemOptions.QuarantineBlocks = int.MaxValue, "QuarantineBlocks must be 1 to"));
        rows.Add(Throws<ArgumentOutOfRangeException>("KmemOptions.set_MallocLogEntries", "-1", () => KmemOptions.MallocLogEntries = -1, "MallocLogEntries must be 0 to"));
        rows.Add(Throws<ArgumentOutOfRangeException>("KmemOptions.set_MallocLogEntries", "int.MaxValue", () => KmemOptions.MallocLogEntries = int.MaxValue, "MallocLogEntries must be 0 to"));
        rows.Add(Throws<ArgumentOutOfRangeException>("KmemOptions.SetGuardPages", "min size 0", () => KmemOptions.SetGuardPages(type, 0, 64), "must be non-empty"));
        rows.Add(Throws<ArgumentOutOfRangeException>("KmemOptions.SetGuardPages", "min above max", () => KmemOptions.SetGuardPages(type, 200, 100), "must be non-empty"));
        rows.Add(Throws<ArgumentOutOfRangeException>("KmemOptions.SetGuardPages", "max nuint.MaxValue", () => KmemOptions.SetGuardPages(type, 1, nuint.MaxValue), "guard pages serve blocks of at most"));

        // ---- KmemDiagnostics ----
        rows.Add(Fine("KmemDiagnostics.add_Message", "null handler: nothing", () => KmemDiagnostics.Message += null));
        rows.Add(Fine("KmemDiagnostics.remove_Message", "null and unknown handlers: nothing", () =>
        {
            KmemDiagnostics.Message -= null;
            KmemDiagnostics.Message -= (_, _) => { };
        }));

        // ---- Kmemleak registration ----
        rows.Add(Throws<ArgumentOutOfRangeException>("Kmemleak.Alloc", "min_count -2", () => Kmemleak.Alloc((byte*)Foreign + 128, 16, -2), "min_count is -1 (ignore), 0 (root) or a number"));
        rows.Add(Throws<ArgumentOutOfRangeException>("Kmemleak.Alloc", "min_count int.MinValue", () => Kmemleak.Alloc((byte*)Foreign + 128, 16, int.MinValue), "min_count is -1"));
        rows.Add(Throws<ArgumentOutOfRangeException>("Kmemleak.Alloc", "size 0", () => Kmemleak.Alloc((byte*)Foreign + 128, 0, 1), "the object must have a size"));
        rows.Add(Throws<ArgumentOutOfRangeException>("Kmemleak.Alloc", "range wrapping past the top", () => Kmemleak.Alloc((void*)(nuint.MaxValue - 15), 32, 1), "not wrap around"));
        rows.Add(Throws<ArgumentOutOfRangeException>("Kmemleak.Alloc", "size nuint.MaxValue", () => Kmemleak.Alloc((byte*)Foreign + 128, nuint.MaxValue, 1), "not wrap around"));
        rows.Add(Throws<ArgumentException>("Kmemleak.Alloc", "overlapping a registered object", () => Kmemleak.Alloc(registered.P + 16, 16, 1),
            $"Cannot insert {Hex(registered.P + 16)} into the object search tree (overlaps existing)"));
        rows.Add(Throws<ArgumentException>("Kmemleak.Alloc", "covering a registered object", () => Kmemleak.Alloc(registered.P - 16, 1024, 1), "(overlaps existing)"));
        rows.Add(Throws<ArgumentException>("Kmemleak.Alloc", "a Kmem block", () => Kmemleak.Alloc(small.P, 16, 1), "(overlaps existing)"));
        rows.Add(Throws<ArgumentOutOfRangeException>("Kmemleak.Alloc", "unknown gfp 0x40", () => Kmemleak.Alloc((byte*)Foreign + 128, 16, 1, (MallocFlags)0x40), "unknown flags"));
        rows.Add(Fine("Kmemleak.Alloc", "null: ignored", () => Kmemleak.Alloc(null, 16, 1)));
        rows.Add(Throws<ArgumentException>("Kmemleak.AllocPercpu", "foreign cookie", () => Kmemleak.AllocPercpu(new PerCpuPtr(Foreign), 64), "is not a Kmem object"));
        rows.Add(Throws<ArgumentException>("Kmemleak.AllocPercpu", "tracked object", () => Kmemleak.AllocPercpu(pcpu, 64), "(overlaps existing)"));
        rows.Add(Throws<ArgumentOutOfRangeException>("Kmemleak.AllocPercpu", "unknown gfp 0x40", () => Kmemleak.AllocPercpu(pcpu, 64, (MallocFlags)0x40), "unknown flags"));
        rows.Add(Fine("Kmemleak.AllocPercpu", "null handle: ignored", () => Kmemleak.AllocPercpu(default, 64)));
        rows.Add(Throws<InvalidOperationException>("Kmemleak.Vmalloc", "default VmArea", () => Kmemleak.Vmalloc(default, 4096), "null vmalloc area"));
        rows.Add(Throws<ArgumentException>("Kmemleak.Vmalloc", "tracked area", () => Kmemleak.Vmalloc(Heap.FindVmArea(area.P)!.Value, 8192), "(overlaps existing)"));
        rows.Add(Fine("Kmemleak.Free", "null, foreign, interior: ignored", () =>
        {
            Kmemleak.Free(null);
            Kmemleak.Free((byte*)Foreign + 8);
            Kmemleak.Free(registered.P + 8);
        }));
        rows.Add(Throws<ArgumentException>("Kmemleak.FreePart", "a Kmem block", () => Kmemleak.FreePart(small.P, 16), "is Kmem memory; only registered foreign ranges can be freed in part"));
        rows.Add(Fine("Kmemleak.FreePart", "null and unknown: ignored", () =>
        {
            Kmemleak.FreePart(null, 16);
            Kmemleak.FreePart((byte*)Foreign + 8, 16);
        }));
        rows.Add(Fine("Kmemleak.FreePart", "size nuint.MaxValue from inside: cut to the end", () => Kmemleak.FreePart(registered.P + 192, nuint.MaxValue)));
        rows.Add(Fine("Kmemleak.FreePercpu", "null handle, foreign cookie: ignored", () =>
        {
            Kmemleak.FreePercpu(default);
            Kmemleak.FreePercpu(new PerCpuPtr(Foreign));
        }));
        rows.Add(Fine("Kmemleak.UpdateTrace", "null, foreign, interior: ignored", () =>
        {
            Kmemleak.UpdateTrace(null);
            Kmemleak.UpdateTrace(Foreign);
        }));
        foreach ((string name, Action<nint> call) in new (string, Action<nint>)[]
        {
            ("Kmemleak.NotLeak", p => Kmemleak.NotLeak((void*)p)),
            ("Kmemleak.Ignore", p => Kmemleak.Ignore((void*)p)),
            ("Kmemleak.NoScan", p => Kmemleak.NoScan((void*)p)),
            ("Kmemleak.TransientLeak", p => Kmemleak.TransientLeak((void*)p)),
        })
        {
            rows.Add(Fine(name, "null, foreign, interior of a block: ignored", () =>
            {
                call(0);
                call((nint)Foreign);
                call((nint)(small.P + 16));
            }));
        }
        rows.Add(Throws<ArgumentException>("Kmemleak.ScanArea", "area larger than its object", () => Kmemleak.ScanArea(small.P, 1000), $"Scan area larger than object {Hex(small.P)}"));
        rows.Add(Throws<ArgumentException>("Kmemleak.ScanArea", "area from inside past the end", () => Kmemleak.ScanArea(small.P + 96, 32), "Scan area larger than object"));
        rows.Add(Throws<ArgumentException>("Kmemleak.ScanArea", "size nuint.MaxValue - 1 (wraps)", () => Kmemleak.ScanArea(small.P + 16, nuint.MaxValue - 1), "Scan area larger than object"));
        rows.Add(Throws<ArgumentException>("Kmemleak.ScanArea", "registered foreign object, too long", () => Kmemleak.ScanArea(registered.P, 4096), "Scan area larger than object"));
        rows.Add(Throws<ArgumentOutOfRangeException>("Kmemleak.ScanArea", "unknown gfp 0x40", () => Kmemleak.ScanArea(small.P, 16, (MallocFlags)0x40), "unknown flags"));
        rows.Add(Fine("Kmemleak.ScanArea", "null, size 0, unknown address: ignored", () =>
        {
            Kmemleak.ScanArea(null, 16);
            Kmemleak.ScanArea(small.P, 0);
            Kmemleak.ScanArea(Foreign, 16);
        }));
        rows.Add(Throws<ArgumentOutOfRangeException>("Kmemleak.AllocPhys", "min_count -2", () => Kmemleak.AllocPhys(phys + 4096, 16, -2), "min_count is -1"));
        rows.Add(Throws<ArgumentOutOfRangeException>("Kmemleak.AllocPhys", "size 0", () => Kmemleak.AllocPhys(phys + 4096, 0, 1), "the object must have a size"));
        rows.Add(Throws<ArgumentOutOfRangeException>("Kmemleak.AllocPhys", "range wrapping past the top", () => Kmemleak.AllocPhys(ulong.MaxValue - 15, 32, 1), "not wrap around"));
        rows.Add(Throws<ArgumentException>("Kmemleak.AllocPhys", "overlapping a registered object", () => Kmemleak.AllocPhys(phys + 8, 64, 1), $"Cannot insert 0x{phys + 8:x} into the object search tree (overlaps existing)"));
        rows.Add(Throws<ArgumentOutOfRangeException>("Kmemleak.AllocPhys", "unknown gfp 0x40", () => Kmemleak.AllocPhys(phys + 4096, 16, 1, (MallocFlags)0x40), "unknown flags"));
        rows.Add(Fine("Kmemleak.AllocPhys", "0: ignored", () => Kmemleak.AllocPhys(0, 16, 1)));
        rows.Add(Fine("Kmemleak.FreePartPhys", "0 and unknown: ignored", () =>
        {
            Kmemleak.FreePartPhys(0, 16);
            Kmemleak.FreePartPhys(phys + 8192, 16);
        }));
        rows.Add(Fine("Kmemleak.NotLeakPhys", "0, unknown, interior: ignored", () =>
        {
            Kmemleak.NotLeakPhys(0);
            Kmemleak.NotLeakPhys(phys + 8192);
            Kmemleak.NotLeakPhys(phys + 8);
        }));
        rows.Add(Fine("Kmemleak.IgnorePhys", "0, unknown, interior: ignored", () =>
        {
            Kmemleak.IgnorePhys(0);
            Kmemleak.IgnorePhys(phys + 8192);
            Kmemleak.IgnorePhys(phys + 8);
        }));
        // In a small child process: reading the whole test host for it takes minutes.
        rows.Add(Fine("Kmemleak.FindRootReferences", "null, foreign, nuint.MaxValue: an answer, no error", () =>
        {
            (int code, string stdout, string stderr) = ChildProcess.Run("fire-find-roots");
            Assert.True(code == 0 && stdout.Contains("find-roots ok", StringComparison.Ordinal), $"exit {code}: {stdout} {stderr}");
        }));
        rows.Add(Throws<ArgumentNullException>("Kmemleak.ResultOf", "null leaks", () => Kmemleak.ResultOf(null!, new LeakScanStats(0, 0, TimeSpan.Zero))));
        rows.Add(Throws<ArgumentNullException>("Kmemleak.ResultOf", "null stats", () => Kmemleak.ResultOf([], null!)));
        rows.Add(Throws<ArgumentNullException>("LeakReport..ctor", "null type", () => new LeakReport(16, 16, null!, "s", true, TimeSpan.Zero, LeakObjectKind.Block, true)));
        rows.Add(Throws<ArgumentNullException>("LeakReport..ctor", "null site", () => new LeakReport(16, 16, "t", null!, true, TimeSpan.Zero, LeakObjectKind.Block, true)));

        // ---- Kmemleak.Write: garbage commands ----
        rows.Add(Throws<ArgumentNullException>("Kmemleak.Write", "null", () => Kmemleak.Write(null!)));
        string unknownAddress = $"0x{(nuint)Foreign + 64:x}";
        foreach ((string command, string message) in new[]
        {
            ("", "unknown kmemleak command"),
            ("   ", "unknown kmemleak command"),
            ("garbage", "unknown kmemleak command"),
            ("\0", "unknown kmemleak command"),
            ("scanX", "unknown kmemleak command"),
            ("STACK=ON", "unknown kmemleak command"),
            ("stack=maybe", "unknown kmemleak command"),
            ("scan=", "unknown kmemleak command"),
            ("dump=", "unknown kmemleak command"),
            ("minage=", "unknown kmemleak command"),
            ("scan=-5", "is not a number from 0 to"),
            ("scan=4294967296", "is not a number from 0 to"),
            ("minage=-1", "is not a number from 0 to"),
            ("minage=abc", "is not a number from 0 to"),
            ("minage=0x", "is not a number from 0 to"),
            ("minage=99999999999999999999999", "is not a number from 0 to"),
            ("minage=1 2", "is not a number from 0 to"),
            ("unref_scans=0", "is not a number from 1 to 7"),
            ("unref_scans=8", "is not a number from 1 to 7"),
            ("unref_scans=0xffffffffffffffff", "is not a number from 1 to 7"),
            ("dump=zz", "is not an address"),
            ("dump=0x", "is not an address"),
            ("dump=-1", "is not an address"),
            ("dump=18446744073709551616", "is not an address"),
            ($"dump={unknownAddress}", $"Unknown object at {unknownAddress}"),
            ("dump=0", "Unknown object at 0x0"),
            ("dump=0xffffffffffffffff", "Unknown object at 0xffffffffffffffff"),
            (new string('x', 1 << 20), "unknown kmemleak command"),
            ("minage=" + new string('9', 1 << 20), "is not a number from 0 to"),
        })
        {
            string shown = command.Length > 40 ? $"{command[..12]}… ({command.Length} chars)" : $"\"{command.Replace("\0", "\\0")}\"";
            rows.Add(Throws<ArgumentException>("Kmemleak.Write", shown, () => Kmemleak.Write(command), message));
        }

        // ---- KmemMemoryPool ----
        rows.Add(Throws<ArgumentNullException>("KmemMemoryPool..ctor", "null type", () => new KmemMemoryPool(null!)));
        rows.Add(Throws<ArgumentException>("KmemMemoryPool..ctor", "detached type", () => new KmemMemoryPool(detached), "is not attached"));
        rows.Add(Throws<ArgumentOutOfRangeException>("KmemMemoryPool.Rent", "size 0", () => pool.Rent(0)));
        rows.Add(Throws<ArgumentOutOfRangeException>("KmemMemoryPool.Rent", "size -2", () => pool.Rent(-2)));
        rows.Add(Throws<ArgumentOutOfRangeException>("KmemMemoryPool.Rent", "size int.MinValue", () => pool.Rent(int.MinValue)));
        rows.Add(Throws<ObjectDisposedException>("KmemMemoryPool.Rent", "disposed pool", () =>
        {
            var p = new KmemMemoryPool(type, captureStacks: false);
            p.Dispose();
            p.Rent(16);
        }));
        rows.Add(Throws<ObjectDisposedException>("KmemMemoryPool.Rent", "owner's memory after Dispose", () =>
        {
            IMemoryOwner<byte> owner = pool.Rent(64);
            owner.Dispose();
            owner.Dispose(); // twice is fine
            _ = owner.Memory.Span;
        }));
        rows.Add(Panics("KmemMemoryPool.Rent", "type detached after the pool was made", () =>
        {
            poolType.Detach();
            try
            {
                pool.Rent(64);
            }
            finally
            {
                poolType.Attach();
            }
        }, "malloc - bogus type"));
        return rows;
    }

    [Fact]
    public void Every_bad_input_gets_its_documented_answer_and_leaves_the_heap_healthy_and_working()
    {
        MallocType type = Types.New(), other = Types.New(), detached = Types.New(), never = Types.New(attach: false), poolType = Types.New();
        detached.Detach();
        var small = new Ptr(Heap.Malloc(100, type));       // 112-byte class
        var large = new Ptr(Heap.Malloc(200_000, type));   // 49 pages
        var area = new Ptr(Heap.Vmalloc(8192, type));
        PerCpuPtr pcpu = Heap.AllocPercpu(64, 16, type);
        var foreign = new Ptr(NativeMemory.AllocZeroed(256));
        var registered = new Ptr(NativeMemory.AllocZeroed(256));
        Kmemleak.Alloc(registered.P, 256, 1);
        using PhysRegion region = PhysRegion.Create(65536);
        region.Map();
        ulong phys = region.Alloc(64);
        Kmemleak.AllocPhys(phys, 64, 1);
        PhysRegion disposed = PhysRegion.Create(4096);
        disposed.Dispose();
        using var pool = new KmemMemoryPool(poolType, captureStacks: false);
        for (int i = 0; i < 112; i++)
            small.P[i] = (byte)i;
        MallocTypeStats before = type.GetStats();

        List<Row> rows = Rows(small, large, area, pcpu, foreign, registered, type, other, detached, never, region, phys, disposed, poolType, pool);
        var failures = new List<string>();
        try
        {
            foreach (Row row in rows)
            {
                Exception? thrown = null;
                try
                {
                    row.Act();
                }
                catch (Exception e)
                {
                    thrown = e;
                }
                string? wrong = row.Throws is null
                    ? thrown is null ? null : $"expected no error, got {thrown.GetType().Name}: {thrown.Message}"
                    : thrown is null ? $"expected {row.Throws.Name}, nothing was thrown"
                    : thrown.GetType() != row.Throws ? $"expected {row.Throws.Name} \"{row.Message}\", got {thrown.GetType().Name}: {thrown.Message}"
                    : !thrown.Message.Contains(row.Message, StringComparison.Ordinal) ? $"expected a message with \"{row.Message}\", got \"{thrown.Message}\""
                    : null;
                if (wrong is not null)
                    failures.Add($"{row.EntryPoint} / {row.Input}: {wrong}");

                // The heap is healthy and still works, and the rejected call changed nothing of the type's.
                TestSupport.AssertHeapHealthy();
                void* p = Heap.Malloc(64, type);
                *(long*)p = 42;
                Heap.Free(p, type);
                MallocTypeStats now = type.GetStats();
                if (now.InUse != before.InUse || now.MemUse != before.MemUse)
                    failures.Add($"{row.EntryPoint} / {row.Input}: the type's statistics changed ({before.InUse}/{before.MemUse} -> {now.InUse}/{now.MemUse})");
            }
            for (int i = 0; i < 112; i++)
                Assert.Equal((byte)i, small.P[i]);
        }
        finally
        {
            Kmemleak.Free(registered.P);
            Kmemleak.FreePartPhys(phys, 64);
            region.Free(phys);
            Heap.FreePercpu(pcpu, type);
            Heap.Vfree(area.P);
            Heap.Free(large.P, type);
            Heap.Free(small.P, type);
            NativeMemory.Free(foreign.P);
            NativeMemory.Free(registered.P);
        }
        output.WriteLine($"{rows.Count} bad inputs tried over {rows.Select(r => r.EntryPoint).Distinct().Count()} entry points");
        Assert.True(failures.Count == 0, $"{failures.Count} of {rows.Count} rows failed:\n" + string.Join("\n", failures));
        Assert.Equal(0, type.GetStats().InUse);
        TestSupport.AssertHeapHealthy();
    }

    [Fact]
    public void Every_public_method_of_Kmem_has_a_row_in_the_matrix_or_takes_no_bad_input()
    {
        MallocType type = Types.New(), detached = Types.New(), never = Types.New(attach: false), poolType = Types.New();
        detached.Detach();
        using var pool = new KmemMemoryPool(poolType, captureStacks: false);
        using PhysRegion region = PhysRegion.Create(4096);
        // The rows are only listed here, not run: their pointers are never used.
        var nowhere = new Ptr((void*)16);
        HashSet<string> covered = Rows(nowhere, nowhere, nowhere, default, nowhere, nowhere, type, type, detached, never, region, 0, region, poolType, pool)
            .Select(r => r.EntryPoint).ToHashSet();
        var missing = new List<string>();
        foreach (Type t in typeof(Heap).Assembly.GetExportedTypes().Where(t => !t.IsEnum))
        {
            string typeName = t.Name;
            var members = t.GetMethods(BindingFlags.Public | BindingFlags.Static | BindingFlags.Instance | BindingFlags.DeclaredOnly)
                .Where(m => !m.IsSpecialName || m.Name.StartsWith("set_", StringComparison.Ordinal) || m.Name.StartsWith("add_", StringComparison.Ordinal) || m.Name.StartsWith("remove_", StringComparison.Ordinal))
                .Select(m => m.Name)
                .Concat(t.GetConstructors().Select(_ => ".ctor"));
            foreach (string member in members.Distinct())
            {
                if (member is "Equals" or "GetHashCode" or "ToString" or "Deconstruct" or "<Clone>$" or "PrintMembers" or "op_Equality" or "op_Inequality")
                    continue;
                string name = $"{typeName}.{member}";
                if (!covered.Contains(name) && !NoBadInput.ContainsKey(name) && !NoBadInput.ContainsKey($"{typeName}.*"))
                    missing.Add(name);
            }
        }
        Assert.True(missing.Count == 0, "public methods with no bad-input row (add rows, or list them in NoBadInput with a reason):\n" + string.Join("\n", missing));
    }
}

// PerCpu/Heap.PerCpu.cs — the per-CPU part of the allocator's API: alloc_percpu / free_percpu.
using System.Runtime.CompilerServices;
using Kmem.Caches;
using Kmem.Diagnostics;
using Kmem.Leak;
using Kmem.Types;

namespace Kmem;

public static unsafe partial class Heap
{
    /// <summary>
    /// alloc_percpu: an object of <paramref name="size"/> bytes (at most 64 KiB) with one zeroed copy per CPU, each aligned
    /// to <paramref name="align"/> (a power of two up to 4096). Accounted to <paramref name="type"/> as size × copies.
    /// Waits at the type's limit like a WaitOk malloc; panics "malloc: out of space in kmem_map" when no pages can be had.
    /// </summary>
    public static PerCpuPtr AllocPercpu(nuint size, nuint align, MallocType type,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        CheckMalloc(type, MallocFlags.WaitOk);
        if (size == 0 || size > PerCpuAllocator.MaxSize)
            throw new ArgumentOutOfRangeException(nameof(size), size, $"a per-CPU object is 1 to {PerCpuAllocator.MaxSize} bytes");
        if (align == 0 || !nuint.IsPow2(align) || align > PerCpuAllocator.MaxAlign)
            throw new ArgumentOutOfRangeException(nameof(align), align, $"alignment must be a power of two up to {PerCpuAllocator.MaxAlign}");
        uint site = CallSites.Intern(member, file, line);
        byte* tc = ThreadCaches.Current();
        long bytes = PerCpuAllocator.Footprint(size);
        TypeSlot* ts = ThreadCaches.Slot(tc, type.Index);
        TypeAccounting.Take(type, ts, bytes, MallocFlags.WaitOk);
        uint context = ThreadCaches.Context(tc, site);
        byte* p = PerCpuAllocator.Alloc(size, align, (ushort)type.Index, context);
        // A refusal injected by KMEM_FAIL_PAGES is transient: try again, as a WaitOk malloc does.
        if (p == null && Pages.FaultInjection.RetryIfInjected(
                () => (nint)PerCpuAllocator.Alloc(size, align, (ushort)type.Index, context), out nint again))
            p = (byte*)again;
        if (p == null)
        {
            TypeAccounting.Refund(type, ts, bytes);
            Panic.Raise("malloc: out of space in kmem_map");
        }
        LeakTracking.AddKmem(RecordKind.PerCpu, p, (size + 15) & ~(nuint)15, 1, (ushort)type.Index, context);
        ts->Allocs++;
        return new PerCpuPtr(p);
    }

    /// <summary>free_percpu: frees every copy. A handle that is not a live per-CPU object (or is one of another type) panics.</summary>
    public static void FreePercpu(PerCpuPtr ptr, MallocType type,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        byte* cookie = (byte*)ptr.Cookie;
        if (cookie == null)
            Panic.Raise("free_percpu: null pointer");
        if (type is null)
            Panic.Raise("free_percpu: bogus type (null)");
        PerCpuAllocator.Live? live = PerCpuAllocator.Lookup(cookie);
        if (live is null)
            Panic.Raise($"free_percpu: {Panic.Addr(cookie)} is not a live per-CPU object (already freed, or never allocated)");
        if (live.Value.TypeIndex != type.Index)
            Panic.Raise($"free_percpu: {Panic.Addr(cookie)} belongs to type {TypeRegistry.ByIndex(live.Value.TypeIndex)?.ShortDesc ?? "?"}, not {type.ShortDesc}");
        PerCpuAllocator.Live? freed = PerCpuAllocator.Free(cookie);
        if (freed is null)
            Panic.Raise($"free_percpu: {Panic.Addr(cookie)} was freed by another thread meanwhile");
        LeakTracking.RemoveKmem(cookie);
        long bytes = (long)freed.Value.Granules * 16 * PerCpuAllocator.Copies;
        TypeAccounting.Give(type, ThreadCaches.Slot(ThreadCaches.Current(), type.Index), bytes);
    }
}

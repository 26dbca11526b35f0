// PerCpuTests.cs — alloc_percpu: layout and alignment of the copies, ThisCpu, accounting, bad input.
using Xunit;

namespace Kmem.Tests;

public unsafe class PerCpuTests
{
    [Fact]
    public void Copies_are_zeroed_one_stride_apart_and_never_share_a_cache_line()
    {
        var type = Types.New();
        var objs = new List<PerCpuPtr>();
        foreach ((nuint size, nuint align) in new (nuint, nuint)[] { (8, 8), (24, 16), (100, 64), (4000, 4096), (1, 1) })
        {
            PerCpuPtr p = Heap.AllocPercpu(size, align, type);
            objs.Add(p);
            Assert.Equal(0u, (nuint)p.Cookie % align);
            Assert.True(p.Cookie == p.ForCpu(0));
            for (int cpu = 0; cpu < PerCpuPtr.Copies; cpu++)
            {
                byte* copy = (byte*)p.ForCpu(cpu);
                Assert.True(copy == (byte*)p.Cookie + (nuint)cpu * PerCpuPtr.Stride);
                Assert.True(new Span<byte>(copy, (int)size).IndexOfAnyExcept((byte)0) < 0, "copies start zeroed");
                new Span<byte>(copy, (int)size).Fill((byte)(cpu + 1));
            }
            Assert.True(PerCpuPtr.Stride >= 64);
        }
        // Writing one CPU's copy never touched another CPU's copy or another object.
        foreach (PerCpuPtr p in objs)
            for (int cpu = 0; cpu < PerCpuPtr.Copies; cpu++)
                Assert.Equal((byte)(cpu + 1), *(byte*)p.ForCpu(cpu));
        Assert.Throws<ArgumentOutOfRangeException>(() => objs[0].ForCpu(PerCpuPtr.Copies));
        Assert.Throws<ArgumentOutOfRangeException>(() => objs[0].ForCpu(-1));
        foreach (PerCpuPtr p in objs)
            Heap.FreePercpu(p, type);
        Assert.Equal(0, type.GetStats().MemUse);
    }

    [Fact]
    public void A_freed_slot_is_zeroed_again_when_reused()
    {
        var type = Types.New();
        PerCpuPtr a = Heap.AllocPercpu(64, 16, type);
        for (int cpu = 0; cpu < PerCpuPtr.Copies; cpu++)
            *(long*)a.ForCpu(cpu) = -1;
        Heap.FreePercpu(a, type);
        PerCpuPtr b = Heap.AllocPercpu(64, 16, type);
        for (int cpu = 0; cpu < PerCpuPtr.Copies; cpu++)
            Assert.Equal(0, *(long*)b.ForCpu(cpu));
        Heap.FreePercpu(b, type);
    }

    [Fact]
    public void ThisCpu_is_the_copy_of_the_processor_the_thread_runs_on()
    {
        var type = Types.New();
        PerCpuPtr p = Heap.AllocPercpu(8, 8, type);
        int agreed = 0;
        for (int i = 0; i < 1000; i++)
        {
            int before = Thread.GetCurrentProcessorId();
            void* mine = p.ThisCpu();
            int after = Thread.GetCurrentProcessorId();
            if (before == after) // not migrated in between
            {
                Assert.True(mine == p.ForCpu(before % PerCpuPtr.Copies));
                agreed++;
            }
        }
        Assert.True(agreed > 500);
        Heap.FreePercpu(p, type);
    }

    [Fact]
    public void Accounted_as_size_times_copies()
    {
        var type = Types.New();
        PerCpuPtr p = Heap.AllocPercpu(40, 8, type); // 48 bytes per copy
        MallocTypeStats s = type.GetStats();
        Assert.Equal(1, s.InUse);
        Assert.Equal(48L * PerCpuPtr.Copies, s.MemUse);
        Assert.Contains(type.ShortDesc, Heap.FormatVmstat());
        Heap.FreePercpu(p, type);
        s = type.GetStats();
        Assert.Equal(0, s.InUse);
        Assert.Equal(0, s.MemUse);
    }

    [Fact]
    public void Bad_input_is_refused_clearly()
    {
        var type = Types.New();
        Assert.Throws<ArgumentOutOfRangeException>(() => Heap.AllocPercpu(0, 8, type));
        Assert.Throws<ArgumentOutOfRangeException>(() => Heap.AllocPercpu(1 << 20, 8, type));
        Assert.Throws<ArgumentOutOfRangeException>(() => Heap.AllocPercpu(8, 3, type));
        Assert.Throws<ArgumentOutOfRangeException>(() => Heap.AllocPercpu(8, 8192, type));
        PanicAssert.Panics("malloc - bogus type", () => Heap.AllocPercpu(8, 8, Types.New(attach: false)));

        PerCpuPtr p = Heap.AllocPercpu(32, 16, type);
        string cookie = "0x" + ((nuint)p.Cookie).ToString("x");
        PanicAssert.Panics("free_percpu: null pointer", () => Heap.FreePercpu(default, type));
        var other = Types.New();
        PanicAssert.Panics($"free_percpu: {cookie} belongs to type {type.ShortDesc}, not {other.ShortDesc}", () => Heap.FreePercpu(p, other));
        // The copy of CPU 1 (or any interior address) is not the handle.
        void* malloced = Heap.Malloc(32, type);
        Assert.Throws<KmemPanicException>(() => Heap.FreePercpu(new PerCpuPtr((byte*)p.Cookie + 16), type));
        Assert.Throws<KmemPanicException>(() => Heap.FreePercpu(new PerCpuPtr(malloced), type));
        // Per-CPU memory is not freed with Free.
        PanicAssert.Panics($"free: addr {cookie} is per-CPU memory; use FreePercpu", () => Heap.Free(p.Cookie, type));
        Heap.FreePercpu(p, type);
        PanicAssert.Panics($"free_percpu: {cookie} is not a live per-CPU object (already freed, or never allocated)", () => Heap.FreePercpu(p, type));
        Heap.Free(malloced, type);
        Assert.Equal(0, type.GetStats().MemUse);
    }
}

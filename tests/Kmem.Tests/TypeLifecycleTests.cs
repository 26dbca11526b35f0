// TypeLifecycleTests.cs — MALLOC_JUSTDEFINE, attach and detach, and the leak warning on detach.
using Xunit;

namespace Kmem.Tests;

public unsafe class TypeLifecycleTests
{
    [Fact]
    public void A_just_defined_type_is_usable_only_after_attach()
    {
        var type = Types.New(attach: false);
        Assert.False(type.IsAttached);
        Assert.Throws<KmemPanicException>(() => Heap.Malloc(16, type));
        type.Attach();
        Assert.True(type.IsAttached);
        Heap.Free(Heap.Malloc(16, type), type);
        Assert.Equal(1, type.GetStats().Requests);
    }

    [Fact]
    public void Detaching_with_live_blocks_reports_the_leak_and_later_frees_still_account()
    {
        var type = Types.New();
        void* a = Heap.Malloc(100, type);
        void* b = Heap.Malloc(5000, type);
        var messages = new List<string>();
        void Handler(KmemMessageKind kind, string text)
        {
            if (text.Contains($"memory type {type.ShortDesc} "))
                lock (messages)
                    messages.Add(text);
        }
        KmemDiagnostics.Message += Handler;
        try
        {
            type.Detach();
        }
        finally
        {
            KmemDiagnostics.Message -= Handler;
        }
        Assert.Equal(new[] { $"Warning: memory type {type.ShortDesc} leaked memory on destroy (2 allocations, 5232 bytes leaked)." }, messages);
        Assert.DoesNotContain(Heap.TypeStats(), s => s.Type == type.ShortDesc);
        Assert.DoesNotContain(type.ShortDesc, Heap.FormatVmstat());
        Heap.Free(a, type);
        Heap.Free(b, type);
        MallocTypeStats s = type.GetStats();
        Assert.Equal(0, s.InUse);
        Assert.Equal(0, s.MemUse);
    }

    [Fact]
    public void Detaching_a_type_without_blocks_says_nothing()
    {
        var type = Types.New();
        Heap.Free(Heap.Malloc(10, type), type);
        int before = KmemDiagnostics.Recent.Count(m => m.Contains($"memory type {type.ShortDesc} "));
        type.Detach();
        Assert.Equal(before, KmemDiagnostics.Recent.Count(m => m.Contains($"memory type {type.ShortDesc} ")));
    }
}

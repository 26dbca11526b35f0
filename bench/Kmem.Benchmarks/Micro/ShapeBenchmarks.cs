// Micro/ShapeBenchmarks.cs — BenchmarkDotNet micro-benchmarks ("bdn" mode) of the quick mode's pair64-batch1000 and
// mixed loops, per allocator that loads here (kmem with leak tracking on, nativememory, mimalloc); the loops are the
// harness's own (Quick/AllocWorkloads.cs), so both harnesses time the same code.
using BenchmarkDotNet.Attributes;
using Kmem.Benchmarks.Peers;
using Kmem.Benchmarks.Quick;

namespace Kmem.Benchmarks.Micro;

/// <summary>
/// One invocation runs one loop of <see cref="BatchOps"/> or <see cref="MixedOps"/> operations (malloc+free pairs), so
/// BenchmarkDotNet reports time per pair. The loop is reached through a delegate: one indirect call per invocation.
/// </summary>
public class ShapeBenchmarks
{
    /// <summary>Operations per invocation of Batch1000: 8 rounds of 1000.</summary>
    public const int BatchOps = 8000;

    /// <summary>Operations per invocation of Mixed: the 1024 window pairs plus 7168 steps.</summary>
    public const int MixedOps = 8192;

    private Func<int, nuint> _batch = null!;
    private Func<int, nuint> _mixed = null!;

    /// <summary>The allocators available in this process (mimalloc only when it loads; jemalloc needs a re-launch the
    /// bdn mode does not do).</summary>
    public static IEnumerable<string> Allocators() => NativePeers.HasMimalloc
        ? [AllocWorkloads.Kmem, AllocWorkloads.NativeMemoryName, AllocWorkloads.Mimalloc]
        : [AllocWorkloads.Kmem, AllocWorkloads.NativeMemoryName];

    [ParamsSource(nameof(Allocators))]
    public string Allocator { get; set; } = AllocWorkloads.Kmem;

    [GlobalSetup]
    public void Setup()
    {
        _batch = AllocWorkloads.Loop(AllocWorkloads.Batch, Allocator)
            ?? throw new InvalidOperationException($"no batch loop for '{Allocator}'");
        _mixed = AllocWorkloads.Loop(AllocWorkloads.Mixed, Allocator)
            ?? throw new InvalidOperationException($"no mixed loop for '{Allocator}'");
    }

    [Benchmark(OperationsPerInvoke = BatchOps)]
    public nuint Batch1000() => _batch(BatchOps);

    [Benchmark(OperationsPerInvoke = MixedOps)]
    public nuint Mixed() => _mixed(MixedOps);
}

// Micro/PairBenchmarks.cs — BenchmarkDotNet micro-benchmarks ("bdn" mode): one 64-byte allocate+free pair per
// operation for Kmem, NativeMemory (the baseline) and, when libmimalloc loads, mimalloc.
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Kmem.Benchmarks.Peers;

namespace Kmem.Benchmarks.Micro;

/// <summary>
/// 64-byte Malloc+Free pairs, <see cref="PairsPerInvoke"/> per invocation so the harness overhead is spread thin;
/// BenchmarkDotNet reports time per pair. Each block gets a byte written and read back so the work cannot be elided.
/// </summary>
public unsafe class PairBenchmarks
{
    /// <summary>Pairs done by one benchmark invocation.</summary>
    public const int PairsPerInvoke = 1000;

    private const nuint BlockSize = 64;

    private MallocType _type = null!;

    [GlobalSetup]
    public void Setup() => _type = new MallocType("bdn64", "BenchmarkDotNet 64-byte pairs");

    [Benchmark(Baseline = true, OperationsPerInvoke = PairsPerInvoke)]
    public nuint NativeMemoryPair()
    {
        nuint sum = 0;
        for (int i = 0; i < PairsPerInvoke; i++)
        {
            byte* p = (byte*)NativeMemory.Alloc(BlockSize);
            *p = (byte)i;
            sum += *p;
            NativeMemory.Free(p);
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = PairsPerInvoke)]
    public nuint KmemPair()
    {
        MallocType type = _type;
        nuint sum = 0;
        for (int i = 0; i < PairsPerInvoke; i++)
        {
            byte* p = (byte*)Heap.Malloc(BlockSize, type);
            *p = (byte)i;
            sum += *p;
            Heap.Free(p, type);
        }

        return sum;
    }

    /// <summary>Excluded by <see cref="Program"/> when mimalloc cannot be loaded; throws if run anyway.</summary>
    [Benchmark(OperationsPerInvoke = PairsPerInvoke)]
    public nuint MimallocPair()
    {
        if (!NativePeers.HasMimalloc)
        {
            throw new InvalidOperationException($"mimalloc is not available: {NativePeers.MimallocNote}");
        }

        nuint sum = 0;
        for (int i = 0; i < PairsPerInvoke; i++)
        {
            byte* p = (byte*)NativePeers.MiMalloc(BlockSize);
            *p = (byte)i;
            sum += *p;
            NativePeers.MiFree(p);
        }

        return sum;
    }
}

// Quick/AllocWorkloads.cs — the allocation workloads' loops (pair64-tight, pair64-batch1000, mixed, the one- and
// two-thread halves of threads2-scaling and its compute reference, producer-consumer), the mixed workload's
// pre-generated sequence, the two persistent worker threads, and the table that maps (workload, allocator) to a loop.
// Used by the parent and by the KMEMLEAK=off child alike, so both run the very same code.
using System.Runtime.InteropServices;
using Kmem.Benchmarks.Peers;

namespace Kmem.Benchmarks.Quick;

internal static unsafe class AllocWorkloads
{
    public const string Tight = "pair64-tight";
    public const string Batch = "pair64-batch1000";
    public const string Mixed = "mixed";
    public const string OneThread = "threads2-scaling/1";
    public const string TwoThreads = "threads2-scaling/2";
    public const string ProducerConsumer = "producer-consumer";

    public const string Kmem = "kmem";
    public const string KmemBatch = "kmem-batch";
    public const string NativeMemoryName = "nativememory";
    public const string Mimalloc = "mimalloc";
    public const string Jemalloc = "jemalloc";

    private const int BatchSize = 1000;
    private const nuint PairSize = 64;
    private const int RingCapacity = 256; // a power of two

    /// <summary>
    /// Operations per repetition of <paramref name="workload"/> for <c>--pairs</c> = <paramref name="pairs"/>: pairs for
    /// the 64-byte pairs, a quarter for mixed and each thread of threads2-scaling, an eighth for producer-consumer.
    /// </summary>
    public static int OpsFor(string workload, int pairs)
    {
        int ops = workload switch
        {
            Tight or Batch => pairs,
            Mixed or OneThread or TwoThreads => pairs / 4,
            _ => pairs / 8,
        };
        return Math.Max(ops / BatchSize * BatchSize, 4 * MixedSequence.Window);
    }

    /// <summary>The loop of <paramref name="workload"/> for <paramref name="allocator"/>; null for an unknown pair.
    /// Each loop does <c>ops</c> operations and returns a checksum.</summary>
    public static Func<int, nuint>? Loop(string workload, string allocator) => allocator switch
    {
        Kmem => Loop<KmemAllocator>(workload, static () => default),
        KmemBatch => Loop(workload, KmemBatchAllocator.Make),
        NativeMemoryName => Loop<NativeMemoryAllocator>(workload, static () => default),
        Mimalloc when NativePeers.HasMimalloc => Loop<MimallocAllocator>(workload, static () => default),
        Jemalloc when NativePeers.HasJemalloc => Loop<JemallocAllocator>(workload, static () => default),
        Compute => workload switch
        {
            OneThread => ops => Workers.Run(ComputeLoop, null, ops),
            TwoThreads => ops => Workers.Run(ComputeLoop, ComputeLoop, ops),
            _ => null,
        },
        _ => null,
    };

    /// <summary>threads2-scaling's reference subject: work that touches no memory (registers only), so its speed-up is
    /// what the machine's two vCPUs give at best. Four independent xorshift chains keep the core's ALUs busy (one
    /// dependent chain would leave them idle, and two vCPUs that share a physical core would still look like two).</summary>
    public const string Compute = "compute";

    private static nuint ComputeLoop(int ops)
    {
        ulong a = 0x9E3779B97F4A7C15UL ^ (ulong)ops, b = a * 3, c = a * 5, d = a * 7;
        for (int i = 0; i < ops; i++)
        {
            for (int k = 0; k < 8; k++)
            {
                a ^= a << 13;
                b ^= b << 13;
                c ^= c << 13;
                d ^= d << 13;
                a ^= a >> 7;
                b ^= b >> 7;
                c ^= c >> 7;
                d ^= d >> 7;
                a ^= a << 17;
                b ^= b << 17;
                c ^= c << 17;
                d ^= d << 17;
            }
        }

        return (nuint)(a ^ b ^ c ^ d);
    }

    // make: the allocator, called on the thread that runs the loop.
    private static Func<int, nuint>? Loop<T>(string workload, Func<T> make) where T : IAllocator, allows ref struct => workload switch
    {
        Tight => ops => TightLoop(make(), ops),
        Batch => ops => BatchLoop(make(), ops),
        Mixed => ops => MixedLoop(make(), ops),
        OneThread => ops => Workers.Run(n => MixedLoop(make(), n), null, ops),
        TwoThreads => ops => Workers.Run(n => MixedLoop(make(), n), n => MixedLoop(make(), n), ops),
        ProducerConsumer => ops => Workers.Run(n => Producer(make(), n), n => Consumer(make(), n), ops),
        _ => null,
    };

    /// <summary>pair64-tight: <c>p = malloc(64); *p = i; free(p)</c>, one operation per pair.</summary>
    private static nuint TightLoop<T>(T a, int pairs) where T : IAllocator, allows ref struct
    {
        nuint sum = 0;
        for (int i = 0; i < pairs; i++)
        {
            byte* p = (byte*)a.Alloc(PairSize);
            *p = (byte)i;
            sum += *p;
            a.Free(p, PairSize);
        }

        return sum;
    }

    /// <summary>pair64-batch1000: 1000 mallocs of 64 B into a pointer array (a byte written into each), then the 1000
    /// frees in the same order; one operation per pair.</summary>
    private static nuint BatchLoop<T>(T a, int pairs) where T : IAllocator, allows ref struct
    {
        void** slots = stackalloc void*[BatchSize];
        nuint sum = 0;
        for (int round = pairs / BatchSize; round > 0; round--)
        {
            for (int i = 0; i < BatchSize; i++)
            {
                byte* p = (byte*)a.Alloc(PairSize);
                *p = (byte)i;
                slots[i] = p;
            }

            for (int i = 0; i < BatchSize; i++)
            {
                byte* p = (byte*)slots[i];
                sum += *p;
                a.Free(p, PairSize);
            }
        }

        return sum;
    }

    /// <summary>
    /// mixed: fill a window of <see cref="MixedSequence.Window"/> live blocks with the sequence's initial sizes, then
    /// for each step free the block in the step's slot and allocate the step's size into it, then free the window.
    /// Every new block gets its first and last byte written. One operation is one malloc+free pair: the window's
    /// fill/drain counts <c>Window</c> pairs and each step one, so <paramref name="ops"/> − Window steps are taken.
    /// </summary>
    private static nuint MixedLoop<T>(T a, int ops) where T : IAllocator, allows ref struct
    {
        const int window = MixedSequence.Window;
        byte** slots = stackalloc byte*[window];
        uint* sizes = stackalloc uint[window];
        nuint sum = 0;
        fixed (uint* steps = MixedSequence.Steps)
        fixed (ushort* initial = MixedSequence.Initial)
        {
            for (int i = 0; i < window; i++)
            {
                uint size = initial[i];
                byte* p = (byte*)a.Alloc(size);
                p[0] = (byte)i;
                p[size - 1] = (byte)size;
                slots[i] = p;
                sizes[i] = size;
            }

            int count = ops - window;
            for (int k = 0; k < count; k++)
            {
                uint step = steps[k & (MixedSequence.Length - 1)];
                uint slot = step & 0xffff;
                uint size = step >> 16;
                byte* old = slots[slot];
                sum += old[0];
                a.Free(old, sizes[slot]);
                byte* p = (byte*)a.Alloc(size);
                p[0] = (byte)k;
                p[size - 1] = (byte)size;
                slots[slot] = p;
                sizes[slot] = size;
            }

            for (int i = 0; i < window; i++)
            {
                sum += slots[i][sizes[i] - 1];
                a.Free(slots[i], sizes[i]);
            }
        }

        return sum;
    }

    // ---- producer-consumer ----------------------------------------------------------------------------------------

    /// <summary>The single-producer/single-consumer ring: slot array, and the producer's tail and the consumer's head
    /// on cache lines of their own (indices 8 and 16 of a 192-byte block).</summary>
    private static readonly nint* s_ring = (nint*)NativeMemory.AlignedAlloc(RingCapacity * (nuint)sizeof(nint), 64);
    private static readonly long* s_indices = (long*)NativeMemory.AlignedAlloc(192, 64);

    /// <summary>Producer side: allocates <paramref name="pairs"/> 64-byte blocks (a byte written) and pushes them
    /// into the ring, spinning while it is full.</summary>
    private static nuint Producer<T>(T a, int pairs) where T : IAllocator, allows ref struct
    {
        long* tailField = s_indices + 8;
        long* headField = s_indices + 16;
        long tail = *tailField;
        long head = Volatile.Read(ref *headField);
        for (int i = 0; i < pairs; i++)
        {
            byte* p = (byte*)a.Alloc(PairSize);
            *p = (byte)i;
            if (tail - head == RingCapacity)
            {
                var spin = new SpinWait();
                while (tail - (head = Volatile.Read(ref *headField)) == RingCapacity)
                {
                    spin.SpinOnce(sleep1Threshold: -1);
                }
            }

            s_ring[tail & (RingCapacity - 1)] = (nint)p;
            Volatile.Write(ref *tailField, ++tail);
        }

        return (nuint)pairs;
    }

    /// <summary>Consumer side: pops <paramref name="pairs"/> blocks from the ring (spinning while it is empty), reads
    /// their byte and frees them on this thread.</summary>
    private static nuint Consumer<T>(T a, int pairs) where T : IAllocator, allows ref struct
    {
        long* tailField = s_indices + 8;
        long* headField = s_indices + 16;
        long head = *headField;
        long tail = Volatile.Read(ref *tailField);
        nuint sum = 0;
        for (int i = 0; i < pairs; i++)
        {
            if (head == tail)
            {
                var spin = new SpinWait();
                while (head == (tail = Volatile.Read(ref *tailField)))
                {
                    spin.SpinOnce(sleep1Threshold: -1);
                }
            }

            byte* p = (byte*)s_ring[head & (RingCapacity - 1)];
            Volatile.Write(ref *headField, ++head);
            sum += *p;
            a.Free(p, PairSize);
        }

        return sum;
    }

    // ---- worker threads -------------------------------------------------------------------------------------------

    /// <summary>
    /// Two persistent background threads (started on first use, never stopped), so the thread-count workloads do not
    /// time thread creation and each allocator's per-thread caches stay warm between repetitions. <see cref="Run"/>
    /// hands each thread a loop and returns once both are done.
    /// </summary>
    private static class Workers
    {
        private static readonly Worker s_first = new("bench-worker-1");
        private static readonly Worker s_second = new("bench-worker-2");

        /// <summary>Runs <paramref name="first"/> on worker 1 and <paramref name="second"/> (if any) on worker 2 at the
        /// same time, each with <paramref name="ops"/>; returns the sum of their checksums.</summary>
        public static nuint Run(Func<int, nuint> first, Func<int, nuint>? second, int ops)
        {
            s_first.Start(first, ops);
            if (second is not null)
            {
                s_second.Start(second, ops);
            }

            nuint sum = s_first.Wait();
            if (second is not null)
            {
                sum += s_second.Wait();
            }

            return sum;
        }
    }

    private sealed class Worker
    {
        private readonly SemaphoreSlim _go = new(0);
        private readonly SemaphoreSlim _done = new(0);
        private Func<int, nuint>? _work;
        private int _ops;
        private nuint _result;

        public Worker(string name)
        {
            var thread = new Thread(Loop) { IsBackground = true, Name = name };
            thread.Start();
        }

        public void Start(Func<int, nuint> work, int ops)
        {
            _work = work;
            _ops = ops;
            _go.Release();
        }

        public nuint Wait()
        {
            _done.Wait();
            return _result;
        }

        private void Loop()
        {
            while (true)
            {
                _go.Wait();
                _result = _work!(_ops);
                _done.Release();
            }
        }
    }
}

/// <summary>
/// The mixed workload's fixed sequence, generated once from a seeded xorshift64 (the same in every process and for
/// every subject): <see cref="Initial"/> sizes fill the window; each of <see cref="Steps"/> is a slot (low 16 bits)
/// and a new size (high 16 bits). Sizes are 16 B–4 KiB, skewed to small as in mstress/alloc-test: 60% 16–128 B, 25%
/// 129–512 B, 10% 513–2048 B, 5% 2049–4096 B, uniform within each band.
/// </summary>
internal static class MixedSequence
{
    public const int Window = 1024;
    public const int Length = 1 << 20;

    public static readonly ushort[] Initial = new ushort[Window];
    public static readonly uint[] Steps = new uint[Length];

    static MixedSequence()
    {
        ulong x = 0x9E37_79B9_7F4A_7C15;
        for (int i = 0; i < Window; i++)
        {
            Initial[i] = (ushort)NextSize(ref x);
        }

        for (int k = 0; k < Length; k++)
        {
            uint slot = (uint)(Next(ref x) % Window);
            Steps[k] = slot | (NextSize(ref x) << 16);
        }
    }

    private static ulong Next(ref ulong x)
    {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return x;
    }

    private static uint NextSize(ref ulong x)
    {
        ulong band = Next(ref x) % 100;
        (uint low, uint high) = band switch
        {
            < 60 => (16u, 128u),
            < 85 => (129u, 512u),
            < 95 => (513u, 2048u),
            _ => (2049u, 4096u),
        };
        return low + (uint)(Next(ref x) % (high - low + 1));
    }
}

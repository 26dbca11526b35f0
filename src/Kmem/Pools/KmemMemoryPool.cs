// Pools/KmemMemoryPool.cs — a MemoryPool<byte> over a malloc type, for APIs that take a pool (System.IO.Pipelines,
// Kestrel-style servers): each rented block is a Kmem block of the type, its owner frees it on Dispose, and an owner
// the GC collects without Dispose is reported at once as a leak (an event, a counter, a message and an entry in
// Kmemleak.Read(), with the allocation site) and its block is freed.
using System.Buffers;
using System.Diagnostics;
using Kmem.Diagnostics;
using Kmem.Telemetry;

namespace Kmem.Pools;

/// <summary>
/// A <see cref="MemoryPool{T}"/> whose buffers are Kmem blocks of one <see cref="MallocType"/>: they count in the type's
/// statistics and limit, and the leak detector tracks them. Dispose every owner <see cref="Rent"/> returns; one that is
/// collected without Dispose is reported as a leak and its block freed. With <c>captureStacks</c> (the default) each
/// rent records the managed stack (a few microseconds) so the report names the caller; without it the site is unknown.
/// </summary>
public sealed class KmemMemoryPool : MemoryPool<byte>
{
    /// <summary>The size <see cref="Rent"/> gives when no size is asked for.</summary>
    public const int DefaultBufferSize = 4096;

    private readonly MallocType _type;
    private readonly bool _captureStacks;
    private volatile bool _disposed;

    /// <param name="type">The malloc type the buffers are allocated under (attached).</param>
    /// <param name="captureStacks">Record the renting stack for leak reports (costs a stack walk per rent).</param>
    public KmemMemoryPool(MallocType type, bool captureStacks = true)
    {
        ArgumentNullException.ThrowIfNull(type);
        if (!type.IsAttached)
            throw new ArgumentException($"malloc type '{type.ShortDesc}' is not attached", nameof(type));
        _type = type;
        _captureStacks = captureStacks;
    }

    /// <summary>The malloc type buffers are allocated under.</summary>
    public MallocType Type => _type;

    /// <inheritdoc/>
    public override int MaxBufferSize => Array.MaxLength;

    /// <summary>A buffer of at least <paramref name="minBufferSize"/> bytes (−1: <see cref="DefaultBufferSize"/>),
    /// waiting at the type's limit like <see cref="MallocFlags.WaitOk"/>.</summary>
    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (minBufferSize == -1)
            minBufferSize = DefaultBufferSize;
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(minBufferSize);
        Site site = _captureStacks ? RentingSite() : new Site("KmemMemoryPool.Rent", "(captureStacks: false)", 0, "unknown (captureStacks: false)");
        return new Owner(_type, minBufferSize, site);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing) => _disposed = true;

    /// <summary>Where a buffer was rented: the first frame outside the pool (the block's Kmem allocation site) and the
    /// stack above it as text.</summary>
    private sealed record Site(string Member, string File, int Line, string Stack);

    // From the stack's text (what works under trimming and Native AOT too): "   at M(args) in F:line N" lines.
    private static Site RentingSite()
    {
        var lines = new List<string>();
        Site? first = null;
        foreach (string raw in new StackTrace(1, fNeedFileInfo: false).ToString().Split('\n'))
        {
            string line = raw.Trim();
            if (line.StartsWith("at ", StringComparison.Ordinal))
                line = line[3..];
            if (line.Length == 0 || line.StartsWith("Kmem.Pools.KmemMemoryPool", StringComparison.Ordinal)
                || line.StartsWith("System.Buffers.MemoryPool", StringComparison.Ordinal))
                continue;
            int at = line.LastIndexOf(" in ", StringComparison.Ordinal);
            int colon = at < 0 ? -1 : line.LastIndexOf(":line ", StringComparison.Ordinal);
            string member = at < 0 ? line : line[..at];
            string file = colon > at ? line[(at + 4)..colon] : "";
            int number = colon > at && int.TryParse(line.AsSpan(colon + 6), out int n) ? n : 0;
            lines.Add(file.Length > 0 ? $"{member} at {file}:{number}" : member);
            first ??= new Site(member, file, number, "");
            if (lines.Count == 8)
                break;
        }
        return first is null ? new Site("KmemMemoryPool.Rent", "", 0, "unknown") : first with { Stack = string.Join("\n    ", lines) };
    }

    /// <summary>One rented buffer. Its block belongs to a <see cref="Lifetime"/>: Dispose frees it; if the owner is
    /// collected first, the lifetime's finalizer reports the leak and frees it. (The finalizer lives apart from the
    /// memory manager on purpose: a Span taken from a forgotten owner is the caller's bug either way, but a finalizer on
    /// the manager itself would also run while the manager is merely unreachable from a live span's user.)</summary>
    private sealed unsafe class Owner(MallocType type, int length, Site site) : MemoryManager<byte>
    {
        private readonly int _length = length;
        private readonly Lifetime _lifetime = new(type, length, site);

        public override Span<byte> GetSpan()
        {
            nint block = _lifetime.Block;
            ObjectDisposedException.ThrowIf(block == 0, this);
            return new Span<byte>((void*)block, _length);
        }

        public override MemoryHandle Pin(int elementIndex = 0)
        {
            nint block = _lifetime.Block;
            ObjectDisposedException.ThrowIf(block == 0, this);
            ArgumentOutOfRangeException.ThrowIfNegative(elementIndex);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(elementIndex, _length);
            return new MemoryHandle((byte*)block + elementIndex); // native memory never moves: nothing to unpin
        }

        public override void Unpin() { }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
                _lifetime.Release();
        }
    }

    /// <summary>The block of one rented buffer (its address while rented: the owner is what holds it; 0 once freed).</summary>
    private sealed unsafe class Lifetime
    {
        private readonly MallocType _type;
        private readonly int _length;
        private readonly Site _site;
        private nint _block;

        public Lifetime(MallocType type, int length, Site site)
        {
            _type = type;
            _length = length;
            _site = site;
            _block = (nint)Heap.Malloc((nuint)length, type, MallocFlags.WaitOk, site.Member, site.File, site.Line);
        }

        // The owner was collected without Dispose. A finalizer must never throw (that ends the process): the block is
        // freed first (a panic there was already published), then each report is made on its own.
        ~Lifetime()
        {
            nint block = Interlocked.Exchange(ref _block, 0);
            if (block == 0)
                return;
            Try(() => Heap.Free((void*)block, _type));
            Try(() => Kmemleak.RecordPoolLeak(block, _length, _type.ShortDesc, _site.Stack));
            Try(() => KmemTelemetry.PoolLeak(_type.ShortDesc, _length, _site.Stack));
            Try(() => KmemDiagnostics.Publish(KmemMessageKind.Warning,
                $"a memory pool buffer of type {_type.ShortDesc} ({_length} bytes) was collected without Dispose; rented at {_site.Stack.Split('\n')[0]}"));

            static void Try(Action report)
            {
                try
                {
                    report();
                }
                catch (Exception)
                {
                    // nothing can be done from a finalizer; the other reports still go out
                }
            }
        }

        public nint Block => Volatile.Read(ref _block);

        /// <summary>Dispose: frees the block (once); a panic from the free reaches the caller.</summary>
        public void Release()
        {
            nint block = Interlocked.Exchange(ref _block, 0);
            if (block == 0)
                return;
            GC.SuppressFinalize(this);
            Heap.Free((void*)block, _type);
        }
    }
}

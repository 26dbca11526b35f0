// Leak/RootReader.cs — reads the process roots and keeps the words that may point at a tracked object. Memory Kmem does
// not own is copied through the platform's fault-free read, a buffer at a time, and filtered with a vectorized range
// check; the work is split into chunks shared by the lanes of ScanWorkers (the calling thread and one per extra core). What
// is kept is complemented, and the buffers are Kmem's own memory, so nothing here is later mistaken for a reference.
using System.Runtime.CompilerServices;
using System.Numerics;
using Kmem.Pages;
using Kmem.Platform;

namespace Kmem.Leak;

/// <summary>The address ranges a word must fall into to be worth a lookup; stored complemented.</summary>
internal readonly struct WordFilter(nuint kmemBase, nuint kmemSize, nuint foreignMin, nuint foreignSpan, nuint physMin, nuint physSpan)
{
    public readonly nuint KmemBaseC = ~kmemBase, KmemSize = kmemSize;
    public readonly nuint ForeignMinC = ~foreignMin, ForeignSpanC = ~foreignSpan;
    public readonly nuint PhysMinC = ~physMin, PhysSpanC = ~physSpan;
}

internal static unsafe class RootReader
{
    private const nuint ChunkBytes = 4 << 20;     // a unit of work
    private const nuint BufferBytes = 128 << 10;  // one read: stays in cache while it is filtered

    /// <summary>What one lane of <see cref="ScanWorkers"/> reads with and what it finds.</summary>
    private sealed class Lane
    {
        public byte* Buffer;                        // null: no buffer could be mapped, the lane reads nothing
        public readonly List<ulong> Found = new();   // ~word
        public long Bytes;
        public long Skipped;                        // bytes that could not be read (unmapped or protected meanwhile)
    }

    private static Lane[] s_lanes = Array.Empty<Lane>();
    private static RootRange[] s_chunks = Array.Empty<RootRange>();
    private static int s_nextChunk;
    private static WordFilter s_filter;
    private static IProcessMemory s_process = null!;
    private static readonly Action<int> s_readLane = ReadLane;

    /// <summary>The scanner's worker threads and a stack address of each (complemented), to keep their stacks out of the roots.</summary>
    public static List<(int Tid, nuint StackComplement)> WorkerStacks() => ScanWorkers.Stacks();

    /// <summary>Reads <paramref name="roots"/> and adds every word that passes <paramref name="filter"/> (complemented) to
    /// <paramref name="found"/>. Returns the bytes read and the bytes that could not be read. Called under the scan lock.</summary>
    public static (long Bytes, long Skipped) Read(IProcessMemory process, List<RootRange> roots, WordFilter filter, List<ulong> found)
    {
        EnsureLanes();
        foreach (Lane l in s_lanes)
        {
            l.Found.Clear(); // also after a failed read
            l.Bytes = l.Skipped = 0;
        }
        var chunks = new List<RootRange>(roots.Count * 2);
        foreach (RootRange r in roots)
            for (nuint off = 0; off < r.Length; off += ChunkBytes)
                chunks.Add(new RootRange(~(~r.StartComplement + off), Math.Min(ChunkBytes, r.Length - off)));
        s_chunks = chunks.ToArray();
        s_nextChunk = -1;
        s_filter = filter;
        s_process = process;
        try
        {
            ScanWorkers.Run(s_readLane);
        }
        finally
        {
            s_chunks = Array.Empty<RootRange>();
        }
        long bytes = 0, skipped = 0;
        foreach (Lane l in s_lanes)
        {
            found.AddRange(l.Found);
            l.Found.Clear();
            bytes += l.Bytes;
            skipped += l.Skipped;
        }
        return (bytes, skipped);
    }

    // A buffer per lane, made once. The calling thread's is required; a worker whose buffer cannot be mapped reads nothing.
    private static void EnsureLanes()
    {
        if (s_lanes.Length == ScanWorkers.Lanes)
            return;
        var lanes = new Lane[ScanWorkers.Lanes];
        for (int i = 0; i < lanes.Length; i++)
        {
            lanes[i] = i < s_lanes.Length ? s_lanes[i] : new Lane();
            if (lanes[i].Buffer == null)
            {
                try
                {
                    lanes[i].Buffer = NewBuffer();
                }
                catch (OutOfMemoryException) when (i > 0)
                {
                    KmemDiagnostics.Publish(KmemMessageKind.Warning, $"kmemleak: root-scan lane {i} has no buffer and reads nothing");
                }
            }
        }
        s_lanes = lanes;
    }

    // The scanning thread's own buffer (it reads its share of the roots, foreign objects and diagnostics with it).
    private static byte* CallerBuffer()
    {
        EnsureLanes();
        return s_lanes[0].Buffer;
    }

    private static byte* NewBuffer()
    {
        IPageProvider pages = OsPages.Provider;
        nint p = pages.Reserve(BufferBytes);
        if (p == 0 || !FaultInjection.CommitMetadata(pages, p, BufferBytes))
            throw new OutOfMemoryException("kmemleak: cannot map a root-scan buffer");
        OwnRegions.Add((void*)p, BufferBytes);
        return (byte*)p;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    private static void ReadLane(int lane)
    {
        Lane l = s_lanes[lane];
        if (l.Buffer == null)
            return;
        WordFilter f = s_filter;
        while (!ScanWorkers.Failed)
        {
            int i = Interlocked.Increment(ref s_nextChunk);
            if (i >= s_chunks.Length)
                return;
            l.Skipped += ReadRange(s_process, s_chunks[i], l.Buffer, (_, got) =>
            {
                l.Bytes += (long)got;
                Filter((ulong*)l.Buffer, got / 8, f, l.Found);
            });
        }
    }

    private delegate void CopyVisitor(nuint atComplement, nuint bytes);

    /// <summary>Reads <paramref name="range"/> into <paramref name="buffer"/> a buffer at a time and calls
    /// <paramref name="visit"/> with where each copy came from and its length; what cannot be read (unmapped or protected
    /// meanwhile) is skipped a page at a time. Returns the bytes skipped.</summary>
    private static long ReadRange(IProcessMemory process, RootRange range, byte* buffer, CopyVisitor visit)
    {
        nuint page = (nuint)Environment.SystemPageSize;
        nuint c = range.StartComplement, left = range.Length;
        long skipped = 0;
        while (left > 0)
        {
            nint got = process.Read(c, buffer, Math.Min(left, BufferBytes));
            nuint advance;
            if (got <= 0)
            {
                nuint at = ~c;
                advance = Math.Min(left, ((at + page) & ~(page - 1)) - at);
                skipped += (long)advance;
            }
            else
            {
                advance = (nuint)got;
                visit(c, advance);
            }
            c = ~(~c + advance);
            left -= advance;
        }
        return skipped;
    }

    /// <summary>Whether the fault-free copy works here: reads a word of this thread's stack through it.</summary>
    internal static bool CanCopy(IProcessMemory process)
    {
        if (!process.IsSupported)
            return false;
        ulong probe = 0x6b6d656d, copy = 0;
        return process.Read(~(nuint)(&probe), (byte*)&copy, 8) == 8 && copy == probe;
    }

    /// <summary>Copies [~startC, ~startC + length) of memory Kmem does not own into the scanning thread's buffer, a buffer
    /// at a time, and visits each copy (word alignment kept: a copy starts at the word holding its first byte). What
    /// cannot be read ends the visit. Called under the scan lock, never while roots are being read.</summary>
    internal static void Copy(IProcessMemory process, nuint startC, nuint length, LeakScanner.RangeVisitor visit)
    {
        byte* buffer = CallerBuffer();
        nuint start = ~startC, end = start + length;
        nuint at = start & ~(nuint)7;
        while (at < end)
        {
            nuint want = Math.Min(end - at, BufferBytes);
            nint got = process.Read(~at, buffer, want);
            if (got <= 0)
                return;
            nuint skip = at < start ? start - at : 0;
            if ((nuint)got > skip)
                visit(buffer + skip, (nuint)got - skip);
            if ((nuint)got < want)
                return;
            at += want;
        }
    }

    /// <summary>Where in the process roots words in [~targetC, ~targetC + length) are stored: complemented locations
    /// (a diagnostic: why is this object referenced?).</summary>
    internal static List<nuint> Locate(IProcessMemory process, List<RootRange> roots, nuint targetC, nuint length)
    {
        byte* buffer = CallerBuffer();
        var where = new List<nuint>();
        foreach (RootRange r in roots)
        {
            ReadRange(process, r, buffer, (atC, got) =>
            {
                for (nuint k = 0; k + 8 <= got; k += 8)
                    if (*(nuint*)(buffer + k) - ~targetC < length)
                        where.Add(~(~atC + k));
            });
        }
        return where;
    }

    /// <summary>Appends ~word for every word in [p, p + words) that falls into one of the filter's ranges.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs rarely and long: no tiering
    internal static void Filter(ulong* p, nuint words, in WordFilter f, List<ulong> found)
    {
        ulong kb = ~f.KmemBaseC, ks = f.KmemSize, fb = ~f.ForeignMinC, fs = ~f.ForeignSpanC, pb = ~f.PhysMinC, ps = ~f.PhysSpanC;
        nuint i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            // Four vectors at a time (Vector256 on x64 with AVX2, Vector128 on arm64): one test per 4 × Count words.
            int n = Vector<ulong>.Count;
            Vector<ulong> vkb = new(kb), vks = new(ks), vfb = new(fb), vfs = new(fs), vpb = new(pb), vps = new(ps);
            for (; i + (nuint)(4 * n) <= words; i += (nuint)(4 * n))
            {
                Vector<ulong> a = Vector.Load(p + i), b = Vector.Load(p + i + n), c = Vector.Load(p + i + 2 * n),
                    d = Vector.Load(p + i + 3 * n);
                Vector<ulong> hit =
                    Vector.LessThan(a - vkb, vks) | Vector.LessThan(a - vfb, vfs) | Vector.LessThan(a - vpb, vps)
                    | Vector.LessThan(b - vkb, vks) | Vector.LessThan(b - vfb, vfs) | Vector.LessThan(b - vpb, vps)
                    | Vector.LessThan(c - vkb, vks) | Vector.LessThan(c - vfb, vfs) | Vector.LessThan(c - vpb, vps)
                    | Vector.LessThan(d - vkb, vks) | Vector.LessThan(d - vfb, vfs) | Vector.LessThan(d - vpb, vps);
                if (hit == Vector<ulong>.Zero)
                    continue;
                for (nuint j = i; j < i + (nuint)(4 * n); j++)
                {
                    ulong v = p[j];
                    if (v - kb < ks || v - fb < fs || v - pb < ps)
                        found.Add(~v);
                }
            }
        }
        for (; i < words; i++)
        {
            ulong v = p[i];
            if (v - kb < ks || v - fb < fs || v - pb < ps)
                found.Add(~v);
        }
    }
}

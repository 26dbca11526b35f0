// KmemleakTestSupport.cs — helpers for leak-detector tests: a registered root table (the stand-in for a module's data),
// scans that get past the priming scan, and filters that keep each test to its own objects.
using System.Runtime.InteropServices;
using Xunit;

namespace Kmem.Tests;

/// <summary>Leak-detector tests change process-wide settings and scan the whole heap: they run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class KmemleakCollection
{
    public const string Name = "Kmemleak";
}

/// <summary>A block of native memory registered as a root (min_count 0), like a module's .data.</summary>
internal sealed unsafe class RootTable : IDisposable
{
    public readonly nint* Slots;
    public readonly int Length;
    private bool _registered = true;

    public RootTable(int length)
    {
        Length = length;
        Slots = (nint*)NativeMemory.AllocZeroed((nuint)(length * sizeof(nint)));
        Kmemleak.Alloc(Slots, (nuint)(length * sizeof(nint)), 0);
    }

    public nint this[int i]
    {
        get => Slots[Checked(i)];
        set => Slots[Checked(i)] = value;
    }

    // The slots are native memory: an index past the end would write into the C heap.
    private int Checked(int i) => (uint)i < (uint)Length ? i : throw new IndexOutOfRangeException($"root table slot {i} of {Length}");

    /// <summary>"rmmod": the table stops being a root.</summary>
    public void Unload()
    {
        if (_registered)
            Kmemleak.Free(Slots);
        _registered = false;
    }

    public void Dispose()
    {
        Unload();
        NativeMemory.Free(Slots);
    }
}

internal static class Leaks
{
    /// <summary>Settings every engine test starts from: no minimum age, one unreferenced scan, and only registered roots
    /// (these tests build graphs from C# locals; ProcessRootsTests scan the whole process).</summary>
    public static void Reset()
    {
        Kmemleak.Write("process=off");
        Kmemleak.Write("gc=off");
        Kmemleak.Write("stack=on");
        Kmemleak.Write("minage=0");
        Kmemleak.Write("unref_scans=1");
        Kmemleak.Write("trace=off");
    }

    /// <summary>Two scans: the first primes the checksums (nothing is reported on its first white scan), the second reports.</summary>
    public static LeakScanResult ScanTwice()
    {
        Kmemleak.Scan();
        return Kmemleak.Scan();
    }

    public static List<LeakReport> Of(this LeakScanResult r, params MallocType[] types) =>
        r.Leaks.Where(l => types.Any(t => t.ShortDesc == l.Type)).ToList();
}

// Leak/LeakState.cs — the leak detector's per-object state, one byte in the side tables (or a field of a record).
namespace Kmem.Leak;

/// <summary>Flags of one tracked object, plus a 3-bit count of consecutive unreferenced scans.</summary>
[Flags]
internal enum LeakState : byte
{
    None = 0,
    /// <summary>Counted as a leak once; never counted again (OBJECT_REPORTED).</summary>
    Reported = 1,
    /// <summary>Contents are not scanned, the object can still be referenced (OBJECT_NO_SCAN).</summary>
    NoScan = 2,
    /// <summary>min_count −1: never scanned, never reported (kmemleak_ignore, or untracked by Kmemleak.Free).</summary>
    Black = 4,
    /// <summary>min_count 0: always scanned, never reported (kmemleak_not_leak, clear, roots).</summary>
    Root = 8,
    /// <summary>The stored checksum is valid; without it the checksum counts as ~0 (never computed, or reset), so a new
    /// block needs no checksum write when it is handed out.</summary>
    CrcValid = 16,
    UnrefMask = 0xE0,
}

internal static class LeakStates
{
    public const int UnrefShift = 5;
    public const int MaxUnref = 7;
    /// <summary>The checksum of an object not checksummed yet (~0, so the first scan always sees a change).</summary>
    public const uint NoCrc = 0xFFFFFFFF;

    /// <summary>The kernel's min_count of an object: −1 when black, 0 when a root, else its own.</summary>
    public static int MinCount(LeakState s, int own) =>
        (s & LeakState.Black) != 0 ? -1 : (s & LeakState.Root) != 0 ? 0 : own;

    public static int Unref(LeakState s) => ((int)s & (int)LeakState.UnrefMask) >> UnrefShift;

    public static LeakState WithUnref(LeakState s, int n) =>
        (LeakState)(((int)s & ~(int)LeakState.UnrefMask) | (Math.Min(n, MaxUnref) << UnrefShift));
}

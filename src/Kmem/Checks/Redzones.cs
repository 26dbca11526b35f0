// Checks/Redzones.cs — guard bytes around DIAGNOSTIC blocks (FreeBSD redzone(9)), inside the block, so no header is
// added to the allocator: a redzoned block is a block of a larger class whose side-table owner entry carries a flag.
// Layout of a block of B bytes for a request of S bytes (S + 32 <= B):
//   [size word 8][pattern 8][user S bytes][pattern ... ][size word 8]
// The size word (S and its complement) is stored at both ends, so either copy survives a short overrun.
namespace Kmem.Checks;

internal static unsafe class Redzones
{
    /// <summary>Bytes before the user's pointer (keeps it 16-byte aligned).</summary>
    public const int Front = 16;

    /// <summary>Bytes a redzoned request adds: the front zone, and at least 8 pattern bytes plus the size copy behind.</summary>
    public const int Extra = 32;

    /// <summary>The byte the zones are filled with (FreeBSD's 0x42).</summary>
    public const byte Pattern = 0x42;

    /// <summary>Set in a block's side-table owner entry while it has the redzoned layout (type indexes are below it).</summary>
    public const ushort OwnerFlag = 0x8000;

    public const ushort TypeMask = 0x3FFF;

    private static ulong SizeWord(nuint size) => (uint)size | ((ulong)~(uint)size << 32);

    private static bool TryDecode(ulong word, out nuint size)
    {
        size = (uint)word;
        return (uint)(word >> 32) == ~(uint)word;
    }

    /// <summary>Lays the zones out in a block of <paramref name="blockSize"/> bytes for a request of <paramref name="size"/>.</summary>
    public static void Write(byte* block, nuint blockSize, nuint size)
    {
        *(ulong*)block = SizeWord(size);
        *(ulong*)(block + 8) = 0x4242424242424242UL;
        new Span<byte>(block + Front + size, (int)(blockSize - Front - size - 8)).Fill(Pattern);
        *(ulong*)(block + blockSize - 8) = SizeWord(size);
    }

    /// <summary>The request size recorded in the zones (either copy); if both were overwritten, the most the block holds.</summary>
    public static nuint RequestedSize(byte* block, nuint blockSize)
    {
        if (TryDecode(*(ulong*)block, out nuint size) && size + Extra <= blockSize)
            return size;
        if (TryDecode(*(ulong*)(block + blockSize - 8), out size) && size + Extra <= blockSize)
            return size;
        return blockSize - Extra;
    }

    /// <summary>Counts the bytes of each zone that differ from what was written.</summary>
    public static (int Before, int After, nuint Size) Verify(byte* block, nuint blockSize)
    {
        nuint size = RequestedSize(block, blockSize);
        ulong word = SizeWord(size);
        int before = CountChanged(block + 8, Front - 8) + CountChangedWord(block, word);
        byte* after = block + Front + size;
        int after8 = (int)(blockSize - Front - size - 8);
        int afterBad = CountChanged(after, after8) + CountChangedWord(block + blockSize - 8, word);
        return (before, afterBad, size);
    }

    /// <summary>Bytes of [p, p + n) that are not the pattern.</summary>
    public static int CountChanged(byte* p, int n)
    {
        if (new ReadOnlySpan<byte>(p, n).IndexOfAnyExcept(Pattern) < 0)
            return 0; // the common case, vectorized
        int bad = 0;
        for (int i = 0; i < n; i++)
            if (p[i] != Pattern)
                bad++;
        return bad;
    }

    private static int CountChangedWord(byte* p, ulong expected)
    {
        if (*(ulong*)p == expected)
            return 0;
        int bad = 0;
        for (int i = 0; i < 8; i++)
            if (p[i] != (byte)(expected >> (8 * i)))
                bad++;
        return bad;
    }

    /// <summary>Prints the messages for corrupted zones around the caller's block at <paramref name="user"/> (each followed
    /// by <paramref name="where"/>: its type and allocation site), then the allocation log around it.</summary>
    public static void Report(int before, int after, byte* user, nuint size, string where)
    {
        if (before == 0 && after == 0)
            return;
        if (before != 0)
            KmemDiagnostics.Publish(KmemMessageKind.Warning, Underflow(before, user, size) + where);
        if (after != 0)
            KmemDiagnostics.Publish(KmemMessageKind.Warning, Overflow(after, user + size, size) + where);
        Heap.PrintLog(user);
    }

    /// <summary>FreeBSD's two messages, with the plural as it prints it.</summary>
    public static string Underflow(int bytes, void* user, nuint size) =>
        $"REDZONE: Buffer underflow detected. {bytes} byte{(bytes == 1 ? "" : "s")} corrupted before {Diagnostics.Panic.Addr(user)} ({size} bytes allocated).";

    public static string Overflow(int bytes, void* end, nuint size) =>
        $"REDZONE: Buffer overflow detected. {bytes} byte{(bytes == 1 ? "" : "s")} corrupted after {Diagnostics.Panic.Addr(end)} ({size} bytes allocated).";
}

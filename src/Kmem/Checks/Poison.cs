// Checks/Poison.cs — the 0xdeadbeef pattern DIAGNOSTIC mode writes over freed blocks, and the check that finds the
// first word a use-after-free write changed.
namespace Kmem.Checks;

internal static unsafe class Poison
{
    /// <summary>NetBSD's WEIRD_ADDR: the word freed memory is filled with.</summary>
    public const uint Word = 0xdeadbeef;

    /// <summary>Bytes poisoned by default (NetBSD's MAX_COPY).</summary>
    public const int PrefixBytes = 32;

    /// <summary>Bytes of a <paramref name="blockSize"/>-byte block to poison under the current setting.</summary>
    public static uint ExtentFor(nuint blockSize) =>
        (uint)(CheckSwitch.Poison == PoisonExtent.Full ? blockSize : Math.Min(blockSize, PrefixBytes));

    public static void Fill(byte* p, uint bytes) => new Span<uint>(p, (int)(bytes / 4)).Fill(Word);

    /// <summary>The index of the first 32-bit word that is not the pattern, or −1.</summary>
    public static int FirstChanged(byte* p, uint bytes) => new ReadOnlySpan<uint>(p, (int)(bytes / 4)).IndexOfAnyExcept(Word);
}

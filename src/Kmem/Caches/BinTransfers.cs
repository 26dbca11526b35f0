// Caches/BinTransfers.cs — the slow paths of a thread cache bin: refilling an empty bin (spare batch, then the depot)
// and spilling a full one (the spare batch goes to the depot). Bonwick's magazine exchange, with linked lists.
using System.Runtime.CompilerServices;
using Kmem.Slabs;

namespace Kmem.Caches;

internal static unsafe class BinTransfers
{
    /// <summary>Refills an empty bin; returns its new head link, or 0 when no block could be had.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static nuint Refill(ClassBin* bin, int cls)
    {
        if (bin->Spare != 0)
        {
            bin->Head = bin->Spare;
            bin->Count = bin->SpareCount;
            bin->Spare = 0;
            bin->SpareCount = 0;
            return bin->Head;
        }
        int n = ClassDepot.All[cls].Refill(OrdinalOf(bin, cls), out nuint head, &bin->Spare);
        bin->Head = head;
        bin->Count = n;
        if (bin->Spare != 0)
            bin->SpareCount = n;
        return head;
    }

    /// <summary>Makes room in a full bin: it becomes the spare, and an older full spare goes to the depot.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void Spill(ClassBin* bin, int cls)
    {
        if (bin->Spare != 0)
            ClassDepot.All[cls].PushBatch(OrdinalOf(bin, cls), bin->Spare);
        bin->Spare = bin->Head;
        bin->SpareCount = bin->Count;
        bin->Head = 0;
        bin->Count = 0;
    }

    // The ordinal of the thread whose cache holds the bin (the depot's shard for it).
    private static uint OrdinalOf(ClassBin* bin, int cls) => ThreadCaches.Header(ThreadCaches.CacheOf(bin, cls))->Ordinal;
}

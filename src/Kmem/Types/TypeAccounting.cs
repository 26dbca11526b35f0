// Types/TypeAccounting.cs — the slow path of per-type accounting: charging bytes against a type's limit (waiting or
// failing when it is reached), giving credit back, waking waiters. The fast path lives in Heap and uses thread credit.
using System.Runtime.CompilerServices;
using Kmem.Caches;

namespace Kmem.Types;

internal static unsafe class TypeAccounting
{
    /// <summary>Bytes a thread may charge ahead for a type under the default limit.</summary>
    public const long DefaultChunk = 64 * 1024;

    /// <summary>
    /// Accounts one allocation of <paramref name="bytes"/> for the calling thread: from its credit when it has enough
    /// (no shared write), else through <see cref="Charge"/>. False only when a NoWait caller meets the limit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Take(MallocType type, TypeSlot* slot, long bytes, MallocFlags flags)
    {
        long credit = slot->Credit - bytes;
        if (credit >= 0 && type.Chunk != 0)
        {
            slot->Credit = credit;
            if (credit < slot->LowCredit)
                slot->LowCredit = credit;
            return true;
        }
        return Charge(type, slot, bytes, flags);
    }

    /// <summary>Accounts one free of <paramref name="bytes"/> for the calling thread.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Give(MallocType type, TypeSlot* slot, long bytes)
    {
        slot->Frees++;
        // With callers waiting at the limit, every freed byte goes back at once (ReturnCredit keeps none).
        if ((slot->Credit += bytes) > 2 * type.Chunk || Volatile.Read(ref type.Waiters) > 0)
            ReturnCredit(type, slot);
    }

    /// <summary>Undoes <see cref="Take"/> when the allocation could not be completed (no pages).</summary>
    public static void Refund(MallocType type, TypeSlot* slot, long bytes)
    {
        slot->Credit += bytes;
        ReturnCredit(type, slot);
    }

    /// <summary>
    /// Charges <paramref name="bytes"/> to <paramref name="type"/> for the calling thread. The limit test comes before
    /// the charge (as NetBSD's), so usage overshoots the limit by one allocation at most. Returns false only for NoWait.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static bool Charge(MallocType type, TypeSlot* slot, long bytes, MallocFlags flags)
    {
        while (true)
        {
            long cur = Volatile.Read(ref type.ChargedBytes);
            long limit = Volatile.Read(ref type.LimitBytes);
            if (cur >= limit && !CreditAdmits(type, cur, limit))
            {
                Interlocked.Increment(ref type.LimitBlockCount);
                if ((flags & MallocFlags.NoWait) != 0)
                    return false;
                WaitForRoom(type);
                continue;
            }
            long chunk = Volatile.Read(ref type.Chunk);
            long grant = chunk != 0 && cur + bytes + chunk <= limit ? bytes + chunk : bytes;
            if (Interlocked.CompareExchange(ref type.ChargedBytes, cur + grant, cur) != cur)
                continue;
            // The thread's net bytes grow by `bytes`; the peak marker moves with Charged so the old peak is kept.
            slot->Charged += grant;
            slot->LowCredit += grant;
            long credit = slot->Credit += grant - bytes;
            if (credit < slot->LowCredit)
                slot->LowCredit = credit;
            if (chunk == 0)
                RaiseHighUse(type, cur + grant);
            return true;
        }
    }

    /// <summary>Gives back what a thread holds beyond its chunk (all of it for exactly accounted types).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)] // off the inlined fast paths: inlined, its lock and atomics cost registers
    public static void ReturnCredit(MallocType type, TypeSlot* slot)
    {
        long keep = Volatile.Read(ref type.Waiters) > 0 ? 0 : Volatile.Read(ref type.Chunk);
        long give = slot->Credit - keep;
        if (give <= 0)
            return;
        slot->Credit = keep;
        slot->Charged -= give;
        slot->LowCredit -= give;
        Uncharge(type, give);
    }

    public static void Uncharge(MallocType type, long bytes)
    {
        long after = Interlocked.Add(ref type.ChargedBytes, -bytes);
        if (Volatile.Read(ref type.Waiters) > 0 && after < Volatile.Read(ref type.LimitBytes))
            WakeWaiters(type);
    }

    public static void WakeWaiters(MallocType type)
    {
        lock (type.WaitLock)
            Monitor.PulseAll(type.WaitLock);
    }

    public static void RaiseHighUse(MallocType type, long value)
    {
        long high = Volatile.Read(ref type.HighUseBytes);
        while (value > high)
        {
            long seen = Interlocked.CompareExchange(ref type.HighUseBytes, value, high);
            if (seen == high)
                return;
            high = seen;
        }
    }

    private static void WaitForRoom(MallocType type)
    {
        lock (type.WaitLock)
        {
            type.Waiters++;
            try
            {
                // A free that brings the type under its limit pulses; the timeout only covers credit handed back late.
                while (true)
                {
                    long cur = Volatile.Read(ref type.ChargedBytes);
                    long limit = Volatile.Read(ref type.LimitBytes);
                    if (cur < limit || CreditAdmits(type, cur, limit))
                        return;
                    Monitor.Wait(type.WaitLock, 100);
                }
            }
            finally
            {
                type.Waiters--;
            }
        }
    }

    // Credit that threads hold (charged ahead under the default limit, or left from before SetLimit made the type exact)
    // is not memory in use, so it must not keep callers out: count it out. For exact types, stop looking once the old
    // credit is all back.
    private static bool CreditAdmits(MallocType type, long charged, long limit)
    {
        if (!type.StaleCredit && Volatile.Read(ref type.Chunk) == 0)
            return false;
        long credit = 0;
        lock (ThreadCaches.Lock)
        {
            foreach (nint tc in ThreadCaches.LiveUnderLock)
                credit += ThreadCaches.Slot((byte*)tc, type.Index)->Credit;
        }
        if (credit == 0 && Volatile.Read(ref type.Chunk) == 0)
            type.StaleCredit = false;
        return charged - credit < limit;
    }
}

// Checks/CheckSwitch.cs — which calls DIAGNOSTIC checks apply to: the process-wide switch, the per-type switches and
// the guard-page selection, plus the settings the checks read (poison extent, redzones). It keeps each type's fast-path
// gates (AllocGate, FreeKey) in step with the switches (and with NoWait failure injection, which also needs the checked
// malloc path): the allocator's fast paths read only those.
namespace Kmem.Checks;

internal static class CheckSwitch
{
    private static readonly object s_lock = new();
    private static int s_typesOn;
    private static volatile GuardSelection? s_guard;

    /// <summary>Some check may apply to a call: DIAGNOSTIC for all or some types, or guard pages.</summary>
    public static bool Active => AnyDiagnostic || s_guard is not null;

    /// <summary>DIAGNOSTIC for every type.</summary>
    public static volatile bool Global;

    public static volatile bool Redzones = !IsOff(Environment.GetEnvironmentVariable("KMEM_REDZONES"));

    public static PoisonExtent Poison;

    /// <summary>Which allocations get guard pages (null: none).</summary>
    public sealed record GuardSelection(string? TypeName, nuint MinSize, nuint MaxSize)
    {
        public bool Matches(MallocType type, nuint size) => size >= MinSize && size <= MaxSize && Selects(type);

        /// <summary>The type is chosen (by name; a type-less selection takes every type but Kmem's own).</summary>
        public bool Selects(MallocType type) => TypeName is null ? !type.Internal : TypeName == type.ShortDesc;
    }

    static CheckSwitch()
    {
        string? diag = Environment.GetEnvironmentVariable("KMEM_DIAGNOSTIC")?.Trim().ToLowerInvariant();
        if (diag == "full")
            Poison = PoisonExtent.Full;
        Global = diag is "1" or "on" or "true" or "yes" or "full";
        s_guard = ParseGuard(Environment.GetEnvironmentVariable("KMEM_GUARD"));
        // Types are refreshed as they are made (each one's first Refresh runs this constructor first).
    }

    private static bool IsOff(string? text) => text?.Trim().ToLowerInvariant() is "0" or "off" or "false" or "no";

    /// <summary>KMEM_GUARD: <c>&lt;type&gt;</c> or <c>*</c>, optionally followed by <c>:&lt;min&gt;-&lt;max&gt;</c> (bytes).</summary>
    internal static GuardSelection? ParseGuard(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
            return null;
        text = text.Trim();
        nuint min = 1, max = GuardPages.MaxBlockSize;
        int colon = text.LastIndexOf(':');
        if (colon >= 0)
        {
            string[] range = text[(colon + 1)..].Split('-');
            if (range.Length != 2 || !nuint.TryParse(range[0], out min) || !nuint.TryParse(range[1], out max)
                || min == 0 || min > max || max > GuardPages.MaxBlockSize)
                return null;
            text = text[..colon];
        }
        return new GuardSelection(text is "*" or "" ? null : text, min, max);
    }

    /// <summary>Whether DIAGNOSTIC checks apply to blocks of <paramref name="type"/>.</summary>
    public static bool Applies(MallocType type) => Global || type.DiagnosticOn;

    public static GuardSelection? Guard => s_guard;

    /// <summary>DIAGNOSTIC mode is on for every type or for some.</summary>
    public static bool AnyDiagnostic => Global || Volatile.Read(ref s_typesOn) > 0;

    public static void SetGlobal(bool on)
    {
        lock (s_lock)
        {
            Global = on;
            Recompute();
        }
    }

    public static void SetType(MallocType type, bool on)
    {
        lock (s_lock)
        {
            if (type.DiagnosticOn == on)
                return;
            type.DiagnosticOn = on;
            s_typesOn += on ? 1 : -1;
            RefreshLocked(type);
        }
    }

    public static void SetGuard(string? typeName, bool anyType, nuint min, nuint max)
    {
        lock (s_lock)
        {
            s_guard = new GuardSelection(anyType ? null : typeName, min, max);
            Recompute();
        }
    }

    public static void ClearGuard()
    {
        lock (s_lock)
        {
            s_guard = null;
            Recompute();
        }
    }

    /// <summary>Fails every <paramref name="every"/>-th NoWait malloc (0: none). While on, every type's AllocGate is
    /// set, so mallocs take the checked path, where the count is kept; the fast path pays nothing while it is off.</summary>
    public static void SetFailNoWait(int every)
    {
        lock (s_lock)
        {
            Pages.FaultInjection.SetNoWaitEvery(every);
            Recompute();
        }
    }

    // Under s_lock: every type's fast-path gates.
    private static void Recompute()
    {
        foreach (MallocType type in Types.TypeRegistry.RegisteredSnapshot())
            RefreshLocked(type);
    }

    /// <summary>Sets <paramref name="type"/>'s fast-path gates after its state or a switch changed.</summary>
    public static void Refresh(MallocType type)
    {
        lock (s_lock)
            RefreshLocked(type);
    }

    private static void RefreshLocked(MallocType type)
    {
        bool diagnostic = Global || type.DiagnosticOn;
        bool guarded = s_guard is { } g && g.Selects(type);
        type.FreeKey = diagnostic ? -1 : type.Index;
        bool failing = Pages.FaultInjection.NoWaitEvery != 0;
        type.AllocGate = type.State == MallocType.Attached && !diagnostic && !guarded && !failing ? 0 : 1;
    }
}

// Peers/NativePeers.cs — loads the peer allocators (mimalloc, jemalloc) from their shared libraries once and
// exposes their allocate/free entry points as unmanaged function pointers, or a note saying why a peer is missing.
using System.Runtime.InteropServices;

namespace Kmem.Benchmarks.Peers;

/// <summary>
/// The native peer allocators. Each is loaded once (in the static constructor) with
/// <see cref="NativeLibrary.Load(string)"/> and <see cref="NativeLibrary.GetExport"/>; a peer that cannot be loaded
/// leaves its function pointers null and its note set. The pointers are <c>static readonly</c>, so optimized code
/// calls them as constants.
/// </summary>
internal static unsafe class NativePeers
{
    /// <summary>The glibc tunable that lets a library with initial-exec TLS (jemalloc) be dlopen'ed late.</summary>
    public const string StaticTlsTunable = "glibc.rtld.optional_static_tls";

    /// <summary>The setting the quick mode adds to <c>GLIBC_TUNABLES</c> before loading jemalloc.</summary>
    public const string StaticTlsSetting = StaticTlsTunable + "=4096";

    private static readonly string[] s_mimallocNames = ["libmimalloc.so.2", "mimalloc"];
    private static readonly string[] s_jemallocNames = ["libjemalloc.so.2", "jemalloc"];

    /// <summary><c>void* mi_malloc(size_t size)</c>, or null when mimalloc is not loaded.</summary>
    public static readonly delegate* unmanaged[SuppressGCTransition]<nuint, void*> MiMalloc;

    /// <summary><c>void mi_free(void* p)</c>, or null when mimalloc is not loaded.</summary>
    public static readonly delegate* unmanaged[SuppressGCTransition]<void*, void> MiFree;

    /// <summary><c>void* mallocx(size_t size, int flags)</c>, or null when jemalloc is not loaded.</summary>
    public static readonly delegate* unmanaged[SuppressGCTransition]<nuint, int, void*> JeMallocx;

    /// <summary><c>void sdallocx(void* p, size_t size, int flags)</c>, or null when jemalloc is not loaded.</summary>
    public static readonly delegate* unmanaged[SuppressGCTransition]<void*, nuint, int, void> JeSdallocx;

    /// <summary>The library name mimalloc was loaded from, or why it was not.</summary>
    public static readonly string MimallocNote;

    /// <summary>The library name jemalloc was loaded from, or why it was not.</summary>
    public static readonly string JemallocNote;

    static NativePeers()
    {
        if (TryLoad(s_mimallocNames, ["mi_malloc", "mi_free"], "libmimalloc-dev", out nint[] mi, out MimallocNote))
        {
            MiMalloc = (delegate* unmanaged[SuppressGCTransition]<nuint, void*>)mi[0];
            MiFree = (delegate* unmanaged[SuppressGCTransition]<void*, void>)mi[1];
        }

        if (TryLoad(s_jemallocNames, ["mallocx", "sdallocx"], "libjemalloc-dev", out nint[] je, out JemallocNote))
        {
            JeMallocx = (delegate* unmanaged[SuppressGCTransition]<nuint, int, void*>)je[0];
            JeSdallocx = (delegate* unmanaged[SuppressGCTransition]<void*, nuint, int, void>)je[1];
        }
    }

    /// <summary>Whether mimalloc's entry points are available.</summary>
    public static bool HasMimalloc => MiMalloc != null;

    /// <summary>Whether jemalloc's entry points are available.</summary>
    public static bool HasJemalloc => JeMallocx != null;

    /// <summary>
    /// Loads the first of <paramref name="names"/> that loads and resolves every export. On success the note is the
    /// name loaded; on failure it explains why (not installed, static TLS exhausted, missing export).
    /// </summary>
    private static bool TryLoad(string[] names, string[] exports, string package, out nint[] addresses, out string note)
    {
        addresses = new nint[exports.Length];
        string? failure = null;
        foreach (string name in names)
        {
            nint handle;
            try
            {
                handle = NativeLibrary.Load(name);
            }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                failure ??= Explain(name, e.Message, package);
                continue;
            }

            for (int i = 0; i < exports.Length; i++)
            {
                if (!NativeLibrary.TryGetExport(handle, exports[i], out addresses[i]))
                {
                    note = $"{name} has no export '{exports[i]}'";
                    return false;
                }
            }

            note = name;
            return true;
        }

        note = failure ?? "no library names to try";
        return false;
    }

    /// <summary>Turns the runtime's multi-line load error into one line a reader can act on.</summary>
    private static string Explain(string name, string message, string package)
    {
        if (message.Contains("static TLS", StringComparison.Ordinal))
        {
            return $"{name}: cannot allocate memory in static TLS block (run with GLIBC_TUNABLES={StaticTlsSetting})";
        }

        if (message.Contains("cannot open shared object file", StringComparison.Ordinal)
            || message.Contains("No such file", StringComparison.Ordinal))
        {
            return $"{name} not found (on Debian/Ubuntu: apt-get install {package})";
        }

        string detail = message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .LastOrDefault() ?? message;
        return $"{name}: {detail}";
    }
}

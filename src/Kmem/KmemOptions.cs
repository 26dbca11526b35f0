// KmemOptions.cs — process-wide settings: panic policy and the size of kmem_map. Read from the environment at start.
using Kmem.Pages;

namespace Kmem;

/// <summary>What a panic does.</summary>
public enum PanicMode
{
    /// <summary>Throw <see cref="KmemPanicException"/> (the default).</summary>
    Throw,
    /// <summary>End the process with <see cref="Environment.FailFast(string)"/> and the panic message.</summary>
    FailFast,
}

/// <summary>
/// Process-wide Kmem settings. Environment variables give the starting values: <c>KMEM_PANIC=failfast|throw</c>,
/// <c>KMEM_MAP_SIZE=&lt;bytes&gt;[K|M|G]</c>.
/// </summary>
public static class KmemOptions
{
    private static PanicMode s_panic = ParsePanic(Environment.GetEnvironmentVariable("KMEM_PANIC"));
    private static ulong s_mapSize = ParseSize(Environment.GetEnvironmentVariable("KMEM_MAP_SIZE"));

    /// <summary>What a panic does; may be changed at any time.</summary>
    public static PanicMode Panic
    {
        get => s_panic;
        set
        {
            if (value is not (PanicMode.Throw or PanicMode.FailFast))
                throw new ArgumentOutOfRangeException(nameof(value), value, "unknown panic mode");
            s_panic = value;
        }
    }

    /// <summary>
    /// The ceiling of the whole heap (NetBSD's kmem_map), in bytes; 0 = the machine's memory. Rounded up to 64 MiB.
    /// Can be set only before the first allocation; afterwards the setter throws <see cref="InvalidOperationException"/>.
    /// </summary>
    public static ulong KmemMapSize
    {
        get => s_mapSize;
        set
        {
            if (KmemMap.IsStarted)
                throw new InvalidOperationException("KmemMapSize must be set before the first allocation; kmem_map is already mapped.");
            if (value != 0 && value < KmemMap.ChunkSize)
                throw new ArgumentOutOfRangeException(nameof(value), value, $"kmem_map must be at least {KmemMap.ChunkSize} bytes (or 0 for the machine's memory).");
            s_mapSize = value;
        }
    }

    internal static PanicMode ParsePanic(string? text) => text?.Trim().ToLowerInvariant() switch
    {
        "failfast" or "fail-fast" or "abort" => PanicMode.FailFast,
        _ => PanicMode.Throw,
    };

    internal static ulong ParseSize(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
            return 0;
        text = text.Trim();
        ulong scale = char.ToUpperInvariant(text[^1]) switch { 'K' => 1UL << 10, 'M' => 1UL << 20, 'G' => 1UL << 30, _ => 1 };
        if (scale != 1)
            text = text[..^1];
        return ulong.TryParse(text, out ulong n) && n <= ulong.MaxValue / scale ? n * scale : 0;
    }
}

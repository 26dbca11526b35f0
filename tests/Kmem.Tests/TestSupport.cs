// TestSupport.cs — shared helpers: fresh malloc types, the non-parallel collection for tests that change global state.
using System.Runtime.CompilerServices;
using Xunit;

namespace Kmem.Tests;

internal static class Types
{
    private static int s_next;

    /// <summary>A fresh attached type with a unique name, so statistics assertions see only this test's blocks.</summary>
    public static MallocType New(ulong limit = 0, bool attach = true, [CallerMemberName] string test = "") =>
        new($"t{Interlocked.Increment(ref s_next)}", test, limit, attach);
}

/// <summary>Tests that change process-wide settings (panic mode, fault injection) run alone, after the others.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GlobalStateCollection
{
    public const string Name = "Kmem global state";
}

internal static class PanicAssert
{
    /// <summary>Runs <paramref name="action"/>, expecting a panic with exactly <paramref name="message"/>.</summary>
    public static void Panics(string message, Action action)
    {
        var e = Assert.Throws<KmemPanicException>(action);
        Assert.Equal(message, e.Message);
    }

    public static string PanicMessage(Action action) => Assert.Throws<KmemPanicException>(action).Message;
}

// TestSupport.cs — shared helpers: fresh malloc types, the non-parallel collection for tests that change global state.
using System.Diagnostics;
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

/// <summary>Runs a scenario of Kmem.Tests.Child in a fresh process: for panics that end it, settings read at start-up,
/// and leak scans that must see a small process of known contents.</summary>
internal static class ChildProcess
{
    public static (int ExitCode, string Stdout, string Stderr) Run(string scenario, params (string Key, string Value)[] env)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "Kmem.Tests.Child.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        psi.ArgumentList.Add(scenario);
        psi.Environment.Remove("KMEM_PANIC");
        psi.Environment.Remove("KMEMLEAK");
        psi.Environment.Remove("KMEMLEAK_DEBUG");
        psi.Environment["DOTNET_DbgEnableMiniDump"] = "0";
        foreach ((string k, string v) in env)
            psi.Environment[k] = v;
        using var process = Process.Start(psi)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync(), stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(240_000), "child did not finish");
        return (process.ExitCode, stdout.Result, stderr.Result);
    }
}

internal static class FaultAssert
{
    /// <summary>The child ended by a memory fault: the runtime turns the SIGSEGV into a fatal error and aborts (134), or
    /// the signal ends it (139); it printed <paramref name="before"/> and never "survived".</summary>
    public static void DiedOfFault((int ExitCode, string Stdout, string Stderr) run, string before)
    {
        (int code, string stdout, string stderr) = run;
        Assert.Contains(before, stdout);
        Assert.DoesNotContain("survived", stdout);
        Assert.True(code is 134 or 139, $"exit code {code}; stdout: {stdout}; stderr: {stderr}");
        Assert.True(stderr.Contains("SIGSEGV") || stderr.Contains("AccessViolation") || code == 139, stderr);
    }
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

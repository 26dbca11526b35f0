// ToolCommon.cs — what the commands share: the process-id option, running an action so that errors are one line
// with a non-zero exit code, and a spinner for waits (shown only on a terminal).
using System.CommandLine;
using Kmem.Tool.Attach;
using Spectre.Console;

namespace Kmem.Tool;

internal static class ToolCommon
{
    public static Option<int> ProcessId() => new("--process-id", "-p") { Description = "The process to attach to.", Required = true };

    public static Option<int> Timeout() => new("--timeout") { Description = "Seconds to wait for the process to answer.", DefaultValueFactory = _ => 30 };

    /// <summary>Runs <paramref name="action"/>; a ToolException (or an unexpected error) becomes "dotnet-kmem: error: …".</summary>
    public static int Guard(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (ToolException e)
        {
            Console.Error.WriteLine("dotnet-kmem: error: " + e.Message);
            return e.ExitCode;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Console.Error.WriteLine($"dotnet-kmem: error: {e.GetType().Name}: {e.Message.Split('\n')[0]}");
            return 1;
        }
    }

    /// <summary>Runs a command in the target with a spinner naming it (on a terminal).</summary>
    public static Reply Ask(int pid, string command, int timeoutSeconds, string what)
    {
        TargetProcess.Require(pid);
        var timeout = TimeSpan.FromSeconds(Math.Max(1, timeoutSeconds));
        if (Console.IsOutputRedirected || Console.IsErrorRedirected)
            return KmemClient.Run(pid, command, timeout);
        Reply? reply = null;
        AnsiConsole.Status().Start($"{what} (process {pid})…", _ => reply = KmemClient.Run(pid, command, timeout));
        return reply!;
    }

    /// <summary>The reply's text, or a ToolException when the target refused the command.</summary>
    public static string Expect(Reply reply, string command) =>
        reply.Status == 0 ? reply.Text : throw new ToolException($"'{command}' failed in the target: {reply.Text}");

    private static readonly System.Text.Json.JsonSerializerOptions s_json = new() { WriteIndented = true };

    /// <summary>Prints <paramref name="value"/> as indented JSON (the --json output of the commands).</summary>
    public static void PrintJson(object value) => Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(value, s_json));

    public static string Bytes(long n) => n >= 10L << 30 ? $"{n >> 30} GiB" : n >= 10L << 20 ? $"{n >> 20} MiB" : n >= 10L << 10 ? $"{n >> 10} KiB" : $"{n} B";
}

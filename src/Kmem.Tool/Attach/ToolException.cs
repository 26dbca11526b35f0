// Attach/ToolException.cs — an error the tool reports as one line (no stack trace) with a non-zero exit code.
namespace Kmem.Tool.Attach;

internal sealed class ToolException(string message, int exitCode = 1) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

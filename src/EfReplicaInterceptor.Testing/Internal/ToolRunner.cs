using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace EfReplicaInterceptor.Testing.Internal;

/// <summary>The exit code and output of a program the harness ran.</summary>
internal sealed record ToolResult(string Command, int ExitCode, string StandardOutput, string StandardError)
{
    public bool Succeeded => ExitCode == 0;

    /// <summary>"command exited with code N" followed by its output, for error messages.</summary>
    public string Describe()
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"`{Command}` exited with code {ExitCode}.");
        AppendOutput(text, StandardOutput);
        AppendOutput(text, StandardError);
        return text.ToString();
    }

    private static void AppendOutput(StringBuilder text, string output)
    {
        var trimmed = output.Trim();
        if (trimmed.Length > 0)
        {
            text.AppendLine().Append(trimmed);
        }
    }
}

/// <summary>Runs programs without a shell, with a time limit, optionally as another user.</summary>
internal static class ToolRunner
{
    private static readonly Lazy<string> RunUserProgram = new(() =>
        new[] { "/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser", "/bin/runuser" }.FirstOrDefault(File.Exists)
        ?? PostgresBinaries.FindOnPath("runuser")
        ?? "runuser");

    /// <summary>
    /// Runs <paramref name="program"/> and returns its exit code and output; never throws for a
    /// non-zero exit code. Environment variables starting with <c>PG</c> are removed (they would
    /// redirect the programs to other servers) and messages are forced to English (<c>LC_ALL=C</c>).
    /// </summary>
    /// <exception cref="TimeoutException">The program did not finish in time; it was killed.</exception>
    public static async Task<ToolResult> RunAsync(
        string program,
        IReadOnlyList<string> arguments,
        string? runAsUser,
        string workingDirectory,
        TimeSpan timeout,
        CancellationToken cancellationToken)
    {
        var startInfo = new ProcessStartInfo
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory,
        };

        if (runAsUser is null)
        {
            startInfo.FileName = program;
        }
        else
        {
            startInfo.FileName = RunUserProgram.Value;
            startInfo.ArgumentList.Add("-u");
            startInfo.ArgumentList.Add(runAsUser);
            startInfo.ArgumentList.Add("--");
            startInfo.ArgumentList.Add(program);
        }

        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        foreach (var name in startInfo.Environment.Keys.Where(key => key.StartsWith("PG", StringComparison.Ordinal)).ToList())
        {
            startInfo.Environment.Remove(name);
        }

        startInfo.Environment["LC_ALL"] = "C";
        startInfo.Environment["LANG"] = "C";

        var command = (runAsUser is null ? string.Empty : $"runuser -u {runAsUser} -- ")
            + string.Join(' ', new[] { program }.Concat(arguments));

        using var process = new Process { StartInfo = startInfo };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception exception)
        {
            throw new InvalidOperationException($"Could not run `{command}`: {exception.Message}", exception);
        }

        process.StandardInput.Close();
        var standardOutput = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var standardError = process.StandardError.ReadToEndAsync(CancellationToken.None);

        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(limit.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            TryKill(process);
            cancellationToken.ThrowIfCancellationRequested();
            var partial = await CollectAsync(standardOutput, standardError).ConfigureAwait(false);
            throw new TimeoutException(
                string.Create(CultureInfo.InvariantCulture, $"`{command}` did not finish within {timeout.TotalSeconds:0.#} s and was killed.")
                + (partial.Length > 0 ? Environment.NewLine + partial : string.Empty));
        }

        // A daemon that inherited the pipes could keep them open; do not wait for it forever.
        var outputs = Task.WhenAll(standardOutput, standardError);
        await Task.WhenAny(outputs, Task.Delay(TimeSpan.FromSeconds(5), CancellationToken.None)).ConfigureAwait(false);
        return new ToolResult(
            command,
            process.ExitCode,
            standardOutput.IsCompletedSuccessfully ? standardOutput.Result : string.Empty,
            standardError.IsCompletedSuccessfully ? standardError.Result : string.Empty);
    }

    private static async Task<string> CollectAsync(Task<string> standardOutput, Task<string> standardError)
    {
        var outputs = Task.WhenAll(standardOutput, standardError);
        await Task.WhenAny(outputs, Task.Delay(TimeSpan.FromSeconds(2), CancellationToken.None)).ConfigureAwait(false);
        var text = (standardOutput.IsCompletedSuccessfully ? standardOutput.Result : string.Empty)
            + (standardError.IsCompletedSuccessfully ? standardError.Result : string.Empty);
        return text.Trim();
    }

    private static void TryKill(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already exited.
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // Could not be killed; nothing more to do here.
        }
    }
}

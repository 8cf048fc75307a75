using System.Diagnostics;
using EfReplicaInterceptor.Demo;
using EfReplicaInterceptor.Testing;

// ./build/demo.sh: starts a PostgreSQL primary and a streaming hot standby, wires EfReplicaInterceptor exactly as the
// README's quickstart does, runs a scripted workload and shows where each command ran (as the server reports it) and why
// (as the library reports it). Exit code: 0 when every step behaved, 1 when one did not, 2 when the demo could not run,
// 130 when interrupted.
var clock = Stopwatch.StartNew();
using var interrupted = new CancellationTokenSource();
void OnCancelKeyPress(object? sender, ConsoleCancelEventArgs e)
{
    if (!interrupted.IsCancellationRequested)
    {
        e.Cancel = true; // stop the workload and clean up the servers instead of dying with them running
        DemoConsole.Line("Interrupted: stopping the workload and removing the servers ...");
        interrupted.Cancel();
    }
}

Console.CancelKeyPress += OnCancelKeyPress;
try
{
    var allOk = await DemoRun.RunAsync(args, interrupted.Token);
    return allOk ? 0 : 1;
}
catch (OperationCanceledException) when (interrupted.IsCancellationRequested)
{
    DemoConsole.Line("Interrupted; the servers were stopped and their files removed.");
    return 130;
}
catch (PostgresBinariesNotFoundException exception)
{
    DemoConsole.Line($"The demo needs the PostgreSQL server programs: {exception.Message}");
    return 2;
}
catch (Exception exception) when (exception is InvalidOperationException or TimeoutException or IOException or Npgsql.NpgsqlException)
{
    DemoConsole.Line($"The demo could not run: {exception}");
    return 2;
}
finally
{
    Console.CancelKeyPress -= OnCancelKeyPress;
    DemoConsole.Line($"Total run time {clock.Elapsed.TotalSeconds:0.0} s.");
}

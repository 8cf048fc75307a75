using System.Globalization;
using System.Runtime.InteropServices;
using EfReplicaInterceptor.TestSupport.History;

// The history matrix's long run: every cell for at least --ops operations, each history checked, one table.
//   bash build/history.sh [--ops 10000] [--seconds 10] [--cells FILTER] [--guarantees-off] [--out FILE]
//   bash build/history.sh --visibility-probe SECONDS [sync-rep]   (plain Npgsql: does a standby show commits before the primary?
//                                                                   sync-rep: the standby synchronous, remote_apply)
if (args is ["--visibility-probe", var probeSeconds, .. var rest])
{
    return await VisibilityProbe.RunAsync(TimeSpan.FromSeconds(double.Parse(probeSeconds, CultureInfo.InvariantCulture)), writers: 4, readers: 4, synchronousReplication: rest is ["sync-rep", ..], CancellationToken.None);
}

var ops = 10_000;
var seconds = 10.0;
string? filter = null;
var guaranteesOff = false;
string? output = null;
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--ops":
            ops = int.Parse(args[++i], CultureInfo.InvariantCulture);
            break;
        case "--seconds":
            seconds = double.Parse(args[++i], CultureInfo.InvariantCulture);
            break;
        case "--cells":
            filter = args[++i];
            break;
        case "--guarantees-off":
            guaranteesOff = true;
            break;
        case "--out":
            output = args[++i];
            break;
        default:
            Console.Error.WriteLine(
                """
                Usage: EfReplicaInterceptor.HistoryRun [--ops N] [--seconds S] [--cells TEXT] [--guarantees-off] [--out FILE]
                  --ops             operations per cell at least (default 10000)
                  --seconds         seconds per cell at least (default 10)
                  --cells           only cells whose name contains TEXT (e.g. "async/2 standbys")
                  --guarantees-off  also the cells that switch a guarantee off (the checker must find violations there)
                  --out             also write the table (Markdown) to FILE
                """);
            return 2;
    }
}

using var cancel = new CancellationTokenSource();
void Stop(PosixSignalContext context)
{
    context.Cancel = true;
    cancel.Cancel();
}

using var onInterrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);

var workload = new WorkloadSettings { Duration = TimeSpan.FromSeconds(seconds), MinimumOperations = ops, MaximumDuration = TimeSpan.FromMinutes(5) };
var cells = HistoryCell.Matrix(workload).ToList();
if (guaranteesOff)
{
    cells.AddRange(GuaranteesOffCells.All(workload));
}

cells = [.. cells.Where(c => filter is null || c.Name.Contains(filter, StringComparison.OrdinalIgnoreCase))];
Console.WriteLine($"history run: {cells.Count} cells, at least {ops:N0} operations and {seconds:0} s each; started {DateTime.UtcNow:u}");

var reports = new List<CellReport>();
try
{
    await using var matrix = await HistoryMatrix.StartAsync(cancel.Token);
    foreach (var cell in cells)
    {
        var report = await matrix.RunAsync(cell, cancel.Token);
        reports.Add(report);
        Console.WriteLine(report.Describe());
        Console.WriteLine();
    }
}
catch (OperationCanceledException) when (cancel.IsCancellationRequested)
{
    Console.Error.WriteLine("Cancelled; servers stopped. Cells finished so far:");
}

var table = CellReport.Header + Environment.NewLine + string.Join(Environment.NewLine, reports.Select(r => r.Row()));
Console.WriteLine(table);
if (output is not null)
{
    await File.WriteAllTextAsync(output, table + Environment.NewLine);
}

return 0;

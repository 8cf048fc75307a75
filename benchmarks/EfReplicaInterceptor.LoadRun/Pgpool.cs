using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using EfReplicaInterceptor.Testing;
using Npgsql;

namespace EfReplicaInterceptor.LoadRun;

/// <summary>
/// A pgpool-II started for the run on 127.0.0.1 in streaming-replication mode with load balancing: backend0 the primary,
/// backend1 the standby, both reached over the servers' unix sockets (trusted by the harness, so pgpool needs no
/// pool_passwd). Runs as the <c>postgres</c> user when this process is root. Dispose to stop it and remove its folder.
/// </summary>
internal sealed class Pgpool : IAsyncDisposable
{
    public const string InstallHint = "sudo apt-get install -y pgpool2";

    private static readonly string[] Candidates = ["/usr/sbin/pgpool", "/usr/bin/pgpool", "/usr/local/bin/pgpool"];

    private readonly string _binary;
    private readonly string _directory;
    private readonly string _configFile;
    private readonly string? _runAs;
    private readonly Process _process;
    private readonly Queue<string> _logTail = new();

    private Pgpool(string binary, string directory, string configFile, string? runAs, Process process, int port, string connectionString)
    {
        _binary = binary;
        _directory = directory;
        _configFile = configFile;
        _runAs = runAs;
        _process = process;
        Port = port;
        ConnectionString = connectionString;
    }

    public int Port { get; }

    /// <summary>Connection string for clients: the primary's credentials and database, pgpool's port.</summary>
    public string ConnectionString { get; }

    /// <summary>The pgpool binary, or null when pgpool-II is not installed.</summary>
    public static string? Locate() =>
        Candidates.FirstOrDefault(File.Exists)
        ?? (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, "pgpool"))
            .FirstOrDefault(File.Exists);

    /// <summary>"pgpool-II version 4.3.5 (tamahomeboshi)", or null.</summary>
    public static async Task<string?> VersionAsync(string binary, CancellationToken ct)
    {
        using var process = Process.Start(new ProcessStartInfo(binary, "--version") { RedirectStandardOutput = true, RedirectStandardError = true })!;
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(TimeSpan.FromSeconds(10));
        var output = await process.StandardOutput.ReadToEndAsync(limit.Token) + await process.StandardError.ReadToEndAsync(limit.Token);
        await process.WaitForExitAsync(limit.Token);
        return output.Trim() is { Length: > 0 } text ? text : null;
    }

    public static async Task<Pgpool> StartAsync(string binary, PostgresReplicaSet set, int workers, CancellationToken ct)
    {
        var runAs = Environment.UserName == "root" ? "postgres" : null;
        var directory = Directory.CreateTempSubdirectory("efreplica-pgpool-").FullName;
        // pgpool (as postgres) writes its pid file, sockets and status file here.
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
            | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute);
        }

        var port = FreePort();
        var pcpPort = FreePort();
        // The harness puts each server's unix socket in the set's folder, the parent of the data directories.
        var socketOf = (PostgresServer server) => Path.GetDirectoryName(server.DataDirectory)!;
        var children = Math.Max(workers * 2, 16);
        var config = new StringBuilder()
            .AppendLine("# Written by EfReplicaInterceptor.LoadRun for one run; deleted afterwards.")
            .AppendLine("backend_clustering_mode = 'streaming_replication'")
            .AppendLine("listen_addresses = '127.0.0.1'")
            .AppendLine(CultureInfo.InvariantCulture, $"port = {port}")
            .AppendLine(CultureInfo.InvariantCulture, $"unix_socket_directories = '{directory}'")
            .AppendLine("pcp_listen_addresses = ''")
            .AppendLine(CultureInfo.InvariantCulture, $"pcp_port = {pcpPort}")
            .AppendLine(CultureInfo.InvariantCulture, $"pcp_socket_dir = '{directory}'")
            .AppendLine(CultureInfo.InvariantCulture, $"backend_hostname0 = '{socketOf(set.Primary)}'")
            .AppendLine(CultureInfo.InvariantCulture, $"backend_port0 = {set.Primary.Port}")
            .AppendLine("backend_weight0 = 1")
            .AppendLine("backend_flag0 = 'DISALLOW_TO_FAILOVER'")
            .AppendLine(CultureInfo.InvariantCulture, $"backend_hostname1 = '{socketOf(set.Standby)}'")
            .AppendLine(CultureInfo.InvariantCulture, $"backend_port1 = {set.Standby.Port}")
            .AppendLine("backend_weight1 = 1")
            .AppendLine("backend_flag1 = 'DISALLOW_TO_FAILOVER'")
            .AppendLine("load_balance_mode = on")
            .AppendLine("statement_level_load_balance = on")
            .AppendLine("sr_check_period = 0")
            .AppendLine(CultureInfo.InvariantCulture, $"sr_check_user = '{new NpgsqlConnectionStringBuilder(set.Primary.ConnectionString).Username}'")
            .AppendLine("health_check_period = 0")
            .AppendLine("failover_on_backend_error = off")
            .AppendLine("enable_pool_hba = off")
            .AppendLine("pool_passwd = ''")
            .AppendLine(CultureInfo.InvariantCulture, $"num_init_children = {children}")
            .AppendLine("max_pool = 1")
            .AppendLine("use_watchdog = off")
            .AppendLine("memory_cache_enabled = off")
            .AppendLine(CultureInfo.InvariantCulture, $"pid_file_name = '{Path.Combine(directory, "pgpool.pid")}'")
            .AppendLine(CultureInfo.InvariantCulture, $"logdir = '{directory}'")
            .AppendLine("log_destination = 'stderr'")
            .AppendLine("log_min_messages = warning")
            .ToString();
        var configFile = Path.Combine(directory, "pgpool.conf");
        await File.WriteAllTextAsync(configFile, config, ct);
        var pcpFile = Path.Combine(directory, "pcp.conf");
        await File.WriteAllTextAsync(pcpFile, string.Empty, ct);
        var hbaFile = Path.Combine(directory, "pool_hba.conf");
        await File.WriteAllTextAsync(hbaFile, string.Empty, ct);

        var start = Command(binary, runAs, ["-n", "-f", configFile, "-F", pcpFile, "-a", hbaFile]);
        start.RedirectStandardError = true;
        start.RedirectStandardOutput = true;
        var process = Process.Start(start) ?? throw new InvalidOperationException("pgpool could not be started.");
        var connectionString = new NpgsqlConnectionStringBuilder(set.Primary.ConnectionString) { Host = "127.0.0.1", Port = port }.ConnectionString;
        var pgpool = new Pgpool(binary, directory, configFile, runAs, process, port, connectionString);
        process.ErrorDataReceived += (_, line) => pgpool.Keep(line.Data);
        process.OutputDataReceived += (_, line) => pgpool.Keep(line.Data);
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        try
        {
            await pgpool.WaitUntilReadyAsync(ct);
            return pgpool;
        }
        catch
        {
            await pgpool.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            try
            {
                var stopCommand = Command(_binary, _runAs, ["-f", _configFile, "-m", "fast", "stop"]);
                stopCommand.RedirectStandardOutput = true;
                stopCommand.RedirectStandardError = true;
                using var stop = Process.Start(stopCommand);
                using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                if (stop is not null)
                {
                    var output = stop.StandardOutput.ReadToEndAsync(limit.Token);
                    var errors = stop.StandardError.ReadToEndAsync(limit.Token);
                    await stop.WaitForExitAsync(limit.Token);
                    await Task.WhenAll(output, errors);
                }

                await _process.WaitForExitAsync(limit.Token);
            }
            catch (Exception exception) when (exception is OperationCanceledException or InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                // Fall through to killing it.
            }

            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }

        _process.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a temp folder.
        }
    }

    private static ProcessStartInfo Command(string binary, string? runAs, string[] arguments)
    {
        var info = runAs is null ? new ProcessStartInfo(binary) : new ProcessStartInfo("runuser");
        if (runAs is not null)
        {
            foreach (var argument in new[] { "-u", runAs, "--", binary })
            {
                info.ArgumentList.Add(argument);
            }
        }

        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        info.UseShellExecute = false;
        return info;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_logTail)
        {
            _logTail.Enqueue(line);
            while (_logTail.Count > 30)
            {
                _logTail.Dequeue();
            }
        }
    }

    private async Task WaitUntilReadyAsync(CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        Exception? last = null;
        var probe = new NpgsqlConnectionStringBuilder(ConnectionString) { Pooling = false, Timeout = 3 }.ConnectionString;
        while (deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            if (_process.HasExited)
            {
                break;
            }

            try
            {
                await using var connection = new NpgsqlConnection(probe);
                await connection.OpenAsync(ct);
                await using var command = new NpgsqlCommand("SELECT 1", connection);
                await command.ExecuteScalarAsync(ct);
                return;
            }
            catch (Exception exception) when (exception is NpgsqlException or IOException or TimeoutException)
            {
                last = exception;
            }

            await Task.Delay(200, ct);
        }

        string tail;
        lock (_logTail)
        {
            tail = string.Join(Environment.NewLine, _logTail);
        }

        throw new InvalidOperationException(
            $"pgpool did not accept connections on 127.0.0.1:{Port} within 30 s{(_process.HasExited ? " (it exited)" : string.Empty)}. "
            + $"Last error: {last?.Message}{Environment.NewLine}pgpool output:{Environment.NewLine}{tail}", last);
    }
}

using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Npgsql;

namespace EfReplicaInterceptor.Testing.Internal;

/// <summary>
/// An initialised data directory (initdb, the test superuser's password, the application database,
/// pg_hba.conf) kept under the harness root and copied for every new primary: initdb takes about a
/// second, a copy well under a tenth of that.
/// </summary>
/// <remarks>
/// The template's name is a hash of what shapes it (harness format, PostgreSQL binaries, owner,
/// database name), so a change of any of them builds a new one. It is built in a set folder of its
/// own and renamed into place, so a template that exists is complete, and processes racing to build
/// the same one all end up with a complete copy.
/// </remarks>
internal static class DataDirectoryTemplate
{
    /// <summary>Bump when the template's content changes shape.</summary>
    private const int FormatVersion = 2; // 2: replication from 127.0.0.1 trusted (standbys stream over TCP loopback)

    private static readonly ConcurrentDictionary<string, Lazy<Task<string>>> Templates = new();

    /// <summary>Returns the template's path, building it once per machine (and caching it per process).</summary>
    public static async Task<string> GetAsync(PgTools tools, PostgresReplicaSetOptions options, CancellationToken cancellationToken)
    {
        var path = Path.Combine(HarnessDirectories.Root, HarnessDirectories.TemplatePrefix + Key(tools, options.DatabaseName, options.SystemIdentifierVariant));
        var build = Templates.GetOrAdd(path, _ => new Lazy<Task<string>>(() => BuildAsync(path, tools, options)));
        try
        {
            return await build.Value.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception) when (build.Value.IsFaulted)
        {
            // Let the next set try again instead of failing forever on a transient problem.
            Templates.TryRemove(new KeyValuePair<string, Lazy<Task<string>>>(path, build));
            throw;
        }
    }

    /// <summary>Copies the template to <paramref name="destination"/> (<c>cp -a</c> keeps the server user as owner).</summary>
    public static async Task CopyAsync(string template, string destination, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var copy = await ToolRunner.RunAsync("cp", ["-a", template, destination], null, "/", timeout, cancellationToken).ConfigureAwait(false);
        if (!copy.Succeeded)
        {
            throw new InvalidOperationException($"Copying the PostgreSQL data directory template {template} to {destination} failed. {copy.Describe()}");
        }
    }

    private static string Key(PgTools tools, string database, int variant)
    {
        var postgres = new FileInfo(tools.PathOf("postgres"));
        var material = string.Create(
            CultureInfo.InvariantCulture,
            $"{FormatVersion}|{tools.BinDirectory}|{postgres.Length}|{postgres.LastWriteTimeUtc.Ticks}|{tools.OwnerName}|{database}");
        if (variant != 0)
        {
            material += string.Create(CultureInfo.InvariantCulture, $"|variant {variant}"); // variant 0 keeps the name templates already have
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(material)))[..12];
    }

    private static async Task<string> BuildAsync(string path, PgTools tools, PostgresReplicaSetOptions options)
    {
        if (IsComplete(path))
        {
            return path;
        }

        var timeout = options.OperationTimeout;
        var cancellationToken = CancellationToken.None;
        var workDirectory = HarnessDirectories.CreateSetDirectory(tools.RunAsUser is not null);
        var dataDirectory = Path.Combine(workDirectory, "data");
        var logFile = Path.Combine(workDirectory, "template.log");
        try
        {
            var initdb = await tools.RunAsync(
                "initdb",
                ["-D", dataDirectory, "-U", ServerConfiguration.UserName, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
                workDirectory,
                timeout,
                cancellationToken).ConfigureAwait(false);
            if (!initdb.Succeeded)
            {
                throw new InvalidOperationException($"initdb failed while preparing the PostgreSQL data directory template in {dataDirectory}. {initdb.Describe()}");
            }

            await File.WriteAllTextAsync(Path.Combine(dataDirectory, "pg_hba.conf"), ServerConfiguration.HostBasedAuthentication, cancellationToken).ConfigureAwait(false);
            await File.AppendAllTextAsync(
                Path.Combine(dataDirectory, "postgresql.conf"),
                $"{Environment.NewLine}# Added by EfReplicaInterceptor.Testing: per-server settings.{Environment.NewLine}{ServerConfiguration.IncludeLine}{Environment.NewLine}",
                cancellationToken).ConfigureAwait(false);

            // Only a unix socket: nothing else can collide with the template server.
            var port = FreePorts.Reserve();
            try
            {
                // Default settings: the caller's extra lines are for its servers, and the template is shared.
                ServerConfiguration.Write(dataDirectory, "template", port, workDirectory, listenOnLoopback: false, new PostgresReplicaSetOptions());
                var start = await tools.RunAsync(
                    "pg_ctl",
                    ["start", "-D", dataDirectory, "-l", logFile, "-w", "-t", HarnessDirectories.Seconds(timeout)],
                    workDirectory,
                    timeout + TimeSpan.FromSeconds(5),
                    cancellationToken).ConfigureAwait(false);
                if (!start.Succeeded)
                {
                    throw new InvalidOperationException(
                        $"Starting the PostgreSQL template server in {dataDirectory} failed. {start.Describe()}{HarnessDirectories.LogTail(logFile)}");
                }

                var socket = new NpgsqlConnectionStringBuilder
                {
                    Host = workDirectory,
                    Port = port,
                    Database = "postgres",
                    Username = ServerConfiguration.UserName,
                    Pooling = false,
                };
                await using (var connection = new NpgsqlConnection(socket.ConnectionString))
                {
                    await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
                    await using var setPassword = new NpgsqlCommand(
                        $"ALTER ROLE {ServerConfiguration.UserName} WITH PASSWORD '{ServerConfiguration.Password}'",
                        connection);
                    await setPassword.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                    await using var createDatabase = new NpgsqlCommand($"CREATE DATABASE {QuoteIdentifier(options.DatabaseName)}", connection);
                    await createDatabase.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                }

                var stop = await tools.RunAsync(
                    "pg_ctl",
                    ["stop", "-D", dataDirectory, "-m", "fast", "-w", "-t", HarnessDirectories.Seconds(timeout)],
                    workDirectory,
                    timeout + TimeSpan.FromSeconds(5),
                    cancellationToken).ConfigureAwait(false);
                if (!stop.Succeeded)
                {
                    throw new InvalidOperationException(
                        $"Stopping the PostgreSQL template server in {dataDirectory} failed. {stop.Describe()}{HarnessDirectories.LogTail(logFile)}");
                }
            }
            finally
            {
                FreePorts.Release(port);
            }

            try
            {
                Directory.Move(dataDirectory, path);
            }
            catch (IOException) when (IsComplete(path))
            {
                // Another process finished the same template first; theirs is as good as ours.
            }

            return path;
        }
        catch (PostgresException exception)
        {
            throw new InvalidOperationException(
                $"Preparing the PostgreSQL data directory template in {dataDirectory} failed: {exception.Message}{HarnessDirectories.LogTail(logFile)}",
                exception);
        }
        finally
        {
            await HarnessDirectories.StopServersUnderAsync(workDirectory, tools, TimeSpan.FromSeconds(30), CancellationToken.None).ConfigureAwait(false);
            HarnessDirectories.TryDelete(workDirectory);
        }
    }

    internal static string QuoteIdentifier(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    private static bool IsComplete(string path) =>
        File.Exists(Path.Combine(path, "PG_VERSION")) && File.Exists(Path.Combine(path, ServerConfiguration.FileName));
}

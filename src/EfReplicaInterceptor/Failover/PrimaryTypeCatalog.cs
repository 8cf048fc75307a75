using System.Collections.Concurrent;
using System.Globalization;
using EfReplicaInterceptor.Diagnostics;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace EfReplicaInterceptor.Failover;

/// <summary>
/// Keeps the database types the primary's data source knows current across a change of primary. Npgsql loads a server's
/// types (an application's enums among them) once per host, on the first physical connection of that host's pool, and a
/// multi-host primary connection string connects to every host while it looks for the primary: a standby's pool may load
/// its types before the standby has replayed a type the primary just created, and Npgsql's <c>ReloadTypes</c> does not reach
/// a multi-host data source's pools (npgsql/npgsql#6237). Once that standby is promoted, every write that names the type
/// fails ("The data type name ... could not be found in the types that were loaded by Npgsql") until the application
/// restarts. So, on the primary's data source only, a new physical connection that finds its host writable reloads that
/// host's types unless a writable session has done so since the host was last seen a standby and since the monitor last
/// saw the primary change (<see cref="PrimaryChanged"/>, which also empties the pools so that such a connection is made).
/// One catalog query per host at start-up and per change of primary; nothing on any other connection. A session pooled
/// before its host became writable keeps the old types: a write on it that Npgsql refuses to bind for a type it did not
/// load fails <c>NotApplied</c> (<see cref="WriteFailureTranslator"/>) and empties the pools.
/// </summary>
/// <remarks>
/// It is Npgsql's physical connection initializer, installed before the application's <c>configureDataSource</c>: an
/// application that installs its own initializer there replaces this one (docs/known-limits.md).
/// </remarks>
internal sealed class PrimaryTypeCatalog(string cluster, ILogger logger)
{
    private readonly ConcurrentDictionary<string, Loaded> _hosts = new(StringComparer.Ordinal);
    private int _generation;

    /// <summary>Installs the check as the data source's physical connection initializer.</summary>
    public void Install(NpgsqlDataSourceBuilder builder)
        => builder.UsePhysicalConnectionInitializer(
            connection => CheckAsync(connection, async: false).GetAwaiter().GetResult(),
            connection => CheckAsync(connection, async: true));

    /// <summary>The monitor saw another server answer as the primary: every host's types are reloaded when it is next found writable.</summary>
    public void PrimaryChanged() => Interlocked.Increment(ref _generation);

    /// <summary>The primary data source's connection string (the very instance its connections report), set once it is built.</summary>
    public string? DataSourceConnectionString { get; set; }

    /// <summary>
    /// Whether the types EF's primary <paramref name="connection"/> runs with may lack one its server has: it comes from the
    /// primary's data source, and its host's types were loaded while it was a standby, or before the primary last changed,
    /// and no session has reloaded them since (the session was pooled before the host became writable). Then Npgsql's refusal
    /// to bind a value of a type it did not load (<see cref="IsUnknownTypeError"/>) is that, not the application's mistake.
    /// </summary>
    public bool MayLackTypes(NpgsqlConnection connection)
        => ReferenceEquals(connection.ConnectionString, DataSourceConnectionString)
           && connection.Host is { } host
           && _hosts.TryGetValue(string.Create(CultureInfo.InvariantCulture, $"{host}:{connection.Port}"), out var loaded)
           && (loaded.WhileStandby || loaded.Generation != Volatile.Read(ref _generation));

    /// <summary>
    /// Npgsql refused to bind a parameter, before sending anything, because its loaded types lack the one named: "The data
    /// type name '...' could not be found in the types that were loaded by Npgsql" (a name, as EF gives for a mapped enum) or
    /// "Writing values of '...' is not supported for parameters ..." (a CLR type mapped to a name it did not load). Errors
    /// reading a result ("Reading as ...") come after the command ran, and are not these.
    /// </summary>
    public static bool IsUnknownTypeError(Exception exception)
    {
        for (Exception? current = exception; current is not null; current = current.InnerException)
        {
            if (current.Source is "Npgsql"
                && ((current is NotSupportedException && current.Message.Contains("could not be found in the types that were loaded by Npgsql", StringComparison.Ordinal))
                    || (current is InvalidCastException && current.Message.StartsWith("Writing values of ", StringComparison.Ordinal))))
            {
                return true;
            }
        }

        return false;
    }

    private async Task CheckAsync(NpgsqlConnection connection, bool async)
    {
        var host = string.Create(CultureInfo.InvariantCulture, $"{connection.Host}:{connection.Port}");
        var generation = Volatile.Read(ref _generation);

        // Read before anything else: the session's types were fixed when it opened, and a reload another session finishes
        // from here on does not reach it. (One that finished between the open and this line is missed: the session keeps the
        // old types for this one use, until it is rented again; a write it refuses to bind then fails untyped.) A host seen for the first time counts as loaded while a standby: its types are
        // reloaded by its first session that finds it writable (one catalog query per host), whoever loaded them first.
        var known = _hosts.TryGetValue(host, out var loaded);
        if (!known)
        {
            loaded = new Loaded(WhileStandby: true, generation);
            _hosts.TryAdd(host, loaded);
        }

        if (await IsStandbyAsync(connection, async).ConfigureAwait(false) || (!loaded.WhileStandby && loaded.Generation == generation))
        {
            return;
        }

        if (async)
        {
            await connection.ReloadTypesAsync().ConfigureAwait(false);
        }
        else
        {
            connection.ReloadTypes();
        }

        _hosts[host] = new Loaded(WhileStandby: false, generation);
        if (known)
        {
            Log.PrimaryTypesReloaded(logger, cluster, host, loaded.WhileStandby ? "they were loaded while it was a standby" : "the primary changed since they were loaded");
        }
    }

    /// <summary>
    /// Whether the server is a standby: PostgreSQL 14 and later report <c>in_hot_standby</c> when the session starts (no round
    /// trip); an older server is asked.
    /// </summary>
    private static async Task<bool> IsStandbyAsync(NpgsqlConnection connection, bool async)
    {
        if (connection.PostgresParameters.TryGetValue("in_hot_standby", out var inHotStandby))
        {
            return string.Equals(inHotStandby, "on", StringComparison.Ordinal);
        }

        using var command = new NpgsqlCommand("SELECT pg_catalog.pg_is_in_recovery()", connection);
        return async ? (bool)(await command.ExecuteScalarAsync().ConfigureAwait(false))! : (bool)command.ExecuteScalar()!;
    }

    private readonly record struct Loaded(bool WhileStandby, int Generation);
}

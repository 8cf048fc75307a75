using System.Globalization;
using EfReplicaInterceptor.Testing.Internal;

namespace EfReplicaInterceptor.Testing;

/// <summary>Role changes by hand: a planned switchover's last step, the old primary rebuilt as the new primary's standby.</summary>
public sealed partial class PostgresReplicaSet
{
    /// <summary>
    /// Re-initialises the stopped server <paramref name="server"/> of this set as a streaming hot standby of
    /// <paramref name="upstream"/> (a server of this set that accepts writes, typically a standby just promoted): its data
    /// directory is replaced by <c>pg_basebackup -R -X stream -c fast</c> from <paramref name="upstream"/>, it keeps its
    /// name and port, is started, and the method returns once it streams from <paramref name="upstream"/>. This is what an
    /// HA manager does to the old primary after a switchover (the old data directory would have diverged after a
    /// failover; a rebuild never does). The set's <see cref="Primary"/> and <see cref="Standbys"/> keep naming the servers
    /// as they were created: ask a server for its role (<c>pg_is_in_recovery()</c>).
    /// </summary>
    /// <param name="server">The server to rebuild; it must be stopped (see <see cref="PostgresServer.StopAsync"/>).</param>
    /// <param name="upstream">The server it streams from afterwards.</param>
    /// <param name="ct">Cancels the operation.</param>
    /// <exception cref="NotSupportedException">The set is external or runs in containers.</exception>
    /// <exception cref="InvalidOperationException"><paramref name="server"/> is still running, or the base backup or the start failed (the message has the details).</exception>
    /// <exception cref="TimeoutException">The rebuilt server did not stream within <see cref="PostgresReplicaSetOptions.OperationTimeout"/>.</exception>
    public async Task RebuildAsStandbyAsync(PostgresServer server, PostgresServer upstream, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(server);
        ArgumentNullException.ThrowIfNull(upstream);
        ObjectDisposedException.ThrowIf(_disposal is not null, this);
        var tools = _tools is not null && _directory is not null ? _tools : throw new NotSupportedException(
            "Rebuilding a server as a standby needs the local backend: the harness must own the servers' data directories.");
        if (ReferenceEquals(server, upstream))
        {
            throw new ArgumentException("A server cannot be rebuilt as a standby of itself.", nameof(upstream));
        }

        if (server.IsRunning)
        {
            throw new InvalidOperationException($"PostgreSQL server '{server.Name}' is running; stop it before rebuilding it as a standby of '{upstream.Name}'.");
        }

        if (!HarnessDirectories.TryDelete(server.DataDirectory))
        {
            throw new InvalidOperationException($"The data directory of PostgreSQL server '{server.Name}' ({server.DataDirectory}) could not be deleted.");
        }

        var backup = await tools.RunAsync("pg_basebackup", BaseBackupArguments(server.DataDirectory, upstream), _directory, _options.OperationTimeout, ct).ConfigureAwait(false);
        if (!backup.Succeeded)
        {
            throw upstream.Failure($"Rebuilding '{server.Name}' as a standby failed: pg_basebackup from '{upstream.Name}' (port {upstream.Port}) did not succeed. {backup.Describe()}");
        }

        // The copy carries the upstream's own settings (its port, its name): the server keeps its own.
        ServerConfiguration.Write(server.DataDirectory, server.Name, server.Port, _directory, listenOnLoopback: true, _options);
        if (server.LogFile is { } log && File.Exists(log))
        {
            await File.WriteAllTextAsync(log, string.Empty, ct).ConfigureAwait(false);
        }

        await server.StartAsync(ct).ConfigureAwait(false);
        await WaitForStreamingAsync(upstream, server, ct).ConfigureAwait(false);
    }
}

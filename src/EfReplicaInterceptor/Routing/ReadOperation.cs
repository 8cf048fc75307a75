using System.Data;
using System.Data.Common;
using EfReplicaInterceptor.Topology;
using Npgsql;

namespace EfReplicaInterceptor.Routing;

/// <summary>How a read is run on a connection the library opened: reader, scalar or non-query.</summary>
internal abstract class ReadOperation<T>
{
    /// <summary>True when the result owns the connection (a reader opened with <see cref="CommandBehavior.CloseConnection"/>).</summary>
    public abstract bool ResultOwnsConnection { get; }

    /// <param name="command">The read, on its open connection.</param>
    /// <param name="types">The replica's types when the read runs on one (a result naming a type they lack reloads them), else null.</param>
    public abstract T Run(NpgsqlCommand command, ReplicaTypes? types);

    /// <inheritdoc cref="Run"/>
    public abstract Task<T> RunAsync(NpgsqlCommand command, ReplicaTypes? types, CancellationToken cancellationToken);
}

internal sealed class ReaderOperation : ReadOperation<DbDataReader>
{
    public static readonly ReaderOperation Instance = new();

    public override bool ResultOwnsConnection => true;

    // The first row is read here, under the read's watch and its retries: a read that fails before any row reached EF is
    // retried elsewhere like any other (a proxy's end of stream after the row description included).
    public override DbDataReader Run(NpgsqlCommand command, ReplicaTypes? types)
    {
        var started = types?.Now ?? 0;
        var reader = command.ExecuteReader(CommandBehavior.CloseConnection);
        try
        {
            if (types is not null && types.Lacks(reader))
            {
                reader.Dispose(); // closes the connection: its session goes back to the pool, idle
                var connection = command.Connection!;
                connection.Open(); // that idle session, at once, under the same watch
                if (!types.ReloadedSince(started))
                {
                    connection.ReloadTypes(); // the replica's pool (a single host): every session rented from now on
                    types.Reloaded();
                }

                reader = command.ExecuteReader(CommandBehavior.CloseConnection);
                if (types.Lacks(reader))
                {
                    types.StillUnknown(reader);
                }
            }

            return new WatchedReader(reader, reader.Read());
        }
        catch (Exception)
        {
            reader.Dispose();
            throw;
        }
    }

    public override async Task<DbDataReader> RunAsync(NpgsqlCommand command, ReplicaTypes? types, CancellationToken cancellationToken)
    {
        var started = types?.Now ?? 0;
        var reader = await command.ExecuteReaderAsync(CommandBehavior.CloseConnection, cancellationToken).ConfigureAwait(false);
        try
        {
            if (types is not null && types.Lacks(reader))
            {
                reader = await ReloadAndRunAgainAsync(command, reader, types, started, cancellationToken).ConfigureAwait(false);
            }

            return new WatchedReader(reader, await reader.ReadAsync(cancellationToken).ConfigureAwait(false));
        }
        catch (Exception)
        {
            await reader.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// The result names a type the replica's sessions do not know (<see cref="ReplicaTypes"/>): the types are reloaded (unless
    /// another read did since this one started) and the read runs again on the same connection, before any row reached EF.
    /// </summary>
    private static async Task<NpgsqlDataReader> ReloadAndRunAgainAsync(NpgsqlCommand command, NpgsqlDataReader reader, ReplicaTypes types, long started, CancellationToken cancellationToken)
    {
        await reader.DisposeAsync().ConfigureAwait(false); // closes the connection: its session goes back to the pool, idle
        var connection = command.Connection!;
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false); // that idle session, at once, under the same watch
        if (!types.ReloadedSince(started))
        {
            await connection.ReloadTypesAsync(cancellationToken).ConfigureAwait(false); // the replica's pool: every session rented from now on
            types.Reloaded();
        }

        var again = await command.ExecuteReaderAsync(CommandBehavior.CloseConnection, cancellationToken).ConfigureAwait(false);
        if (types.Lacks(again))
        {
            types.StillUnknown(again);
        }

        return again;
    }
}

internal sealed class ScalarOperation : ReadOperation<object>
{
    public static readonly ScalarOperation Instance = new();

    public override bool ResultOwnsConnection => false;

    // ExecuteScalar returns null for an empty result; EF's InterceptionResult<object> carries that null as well.
    public override object Run(NpgsqlCommand command, ReplicaTypes? types) => command.ExecuteScalar()!;

    public override async Task<object> RunAsync(NpgsqlCommand command, ReplicaTypes? types, CancellationToken cancellationToken)
        => (await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
}

internal sealed class NonQueryOperation : ReadOperation<int>
{
    public static readonly NonQueryOperation Instance = new();

    public override bool ResultOwnsConnection => false;

    public override int Run(NpgsqlCommand command, ReplicaTypes? types) => command.ExecuteNonQuery();

    public override Task<int> RunAsync(NpgsqlCommand command, ReplicaTypes? types, CancellationToken cancellationToken) => command.ExecuteNonQueryAsync(cancellationToken);
}

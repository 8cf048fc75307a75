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
    /// <param name="types">The replica's types when the read runs on one: a result that names a type they lack is given up
    /// (<see cref="StaleTypesException"/>) to run again after a reload; null: not checked.</param>
    /// <param name="reloaded">The types were reloaded for this read: a type still unknown is one Npgsql does not load, not reloaded for again.</param>
    public abstract T Run(NpgsqlCommand command, ReplicaTypes? types, bool reloaded);

    /// <inheritdoc cref="Run"/>
    public abstract Task<T> RunAsync(NpgsqlCommand command, ReplicaTypes? types, bool reloaded, CancellationToken cancellationToken);
}

internal sealed class ReaderOperation : ReadOperation<DbDataReader>
{
    public static readonly ReaderOperation Instance = new();

    public override bool ResultOwnsConnection => true;

    // The first row is read here, under the read's watch and its retries: a read that fails before any row reached EF is
    // retried elsewhere like any other (a proxy's end of stream after the row description included). A result that names a
    // type the replica's session does not know is given up here too, before any row reached EF (ReplicaTypes).
    public override DbDataReader Run(NpgsqlCommand command, ReplicaTypes? types, bool reloaded)
    {
        var reader = command.ExecuteReader(CommandBehavior.CloseConnection);
        try
        {
            CheckTypes(reader, types, reloaded);
            return new WatchedReader(reader, reader.Read());
        }
        catch (Exception)
        {
            reader.Dispose();
            throw;
        }
    }

    public override async Task<DbDataReader> RunAsync(NpgsqlCommand command, ReplicaTypes? types, bool reloaded, CancellationToken cancellationToken)
    {
        var reader = await command.ExecuteReaderAsync(CommandBehavior.CloseConnection, cancellationToken).ConfigureAwait(false);
        try
        {
            CheckTypes(reader, types, reloaded);
            return new WatchedReader(reader, await reader.ReadAsync(cancellationToken).ConfigureAwait(false));
        }
        catch (Exception)
        {
            await reader.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// A result that names a type the replica's session does not know is given up (<see cref="StaleTypesException"/>), unless
    /// the types were reloaded for this read: then the type is one Npgsql does not load, not reloaded for again.
    /// </summary>
    private static void CheckTypes(NpgsqlDataReader reader, ReplicaTypes? types, bool reloaded)
    {
        if (types is null || !types.Lacks(reader))
        {
            return;
        }

        if (!reloaded)
        {
            throw types.Stale();
        }

        types.StillUnknown(reader);
    }
}

internal sealed class ScalarOperation : ReadOperation<object>
{
    public static readonly ScalarOperation Instance = new();

    public override bool ResultOwnsConnection => false;

    // ExecuteScalar returns null for an empty result; EF's InterceptionResult<object> carries that null as well.
    public override object Run(NpgsqlCommand command, ReplicaTypes? types, bool reloaded) => command.ExecuteScalar()!;

    public override async Task<object> RunAsync(NpgsqlCommand command, ReplicaTypes? types, bool reloaded, CancellationToken cancellationToken)
        => (await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
}

internal sealed class NonQueryOperation : ReadOperation<int>
{
    public static readonly NonQueryOperation Instance = new();

    public override bool ResultOwnsConnection => false;

    public override int Run(NpgsqlCommand command, ReplicaTypes? types, bool reloaded) => command.ExecuteNonQuery();

    public override Task<int> RunAsync(NpgsqlCommand command, ReplicaTypes? types, bool reloaded, CancellationToken cancellationToken) => command.ExecuteNonQueryAsync(cancellationToken);
}

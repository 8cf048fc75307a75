using System.Data;
using System.Data.Common;
using Npgsql;

namespace EfReplicaInterceptor.Routing;

/// <summary>How a read is run on a connection the library opened: reader, scalar or non-query.</summary>
internal abstract class ReadOperation<T>
{
    /// <summary>True when the result owns the connection (a reader opened with <see cref="CommandBehavior.CloseConnection"/>).</summary>
    public abstract bool ResultOwnsConnection { get; }

    public abstract T Run(NpgsqlCommand command);

    public abstract Task<T> RunAsync(NpgsqlCommand command, CancellationToken cancellationToken);
}

internal sealed class ReaderOperation : ReadOperation<DbDataReader>
{
    public static readonly ReaderOperation Instance = new();

    public override bool ResultOwnsConnection => true;

    // The first row is read here, under the read's watch and its retries: a read that fails before any row reached EF is
    // retried elsewhere like any other (a proxy's end of stream after the row description included).
    public override DbDataReader Run(NpgsqlCommand command)
    {
        var reader = command.ExecuteReader(CommandBehavior.CloseConnection);
        try
        {
            return new WatchedReader(reader, reader.Read());
        }
        catch (Exception)
        {
            reader.Dispose();
            throw;
        }
    }

    public override async Task<DbDataReader> RunAsync(NpgsqlCommand command, CancellationToken cancellationToken)
    {
        var reader = await command.ExecuteReaderAsync(CommandBehavior.CloseConnection, cancellationToken).ConfigureAwait(false);
        try
        {
            return new WatchedReader(reader, await reader.ReadAsync(cancellationToken).ConfigureAwait(false));
        }
        catch (Exception)
        {
            await reader.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }
}

internal sealed class ScalarOperation : ReadOperation<object>
{
    public static readonly ScalarOperation Instance = new();

    public override bool ResultOwnsConnection => false;

    // ExecuteScalar returns null for an empty result; EF's InterceptionResult<object> carries that null as well.
    public override object Run(NpgsqlCommand command) => command.ExecuteScalar()!;

    public override async Task<object> RunAsync(NpgsqlCommand command, CancellationToken cancellationToken)
        => (await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
}

internal sealed class NonQueryOperation : ReadOperation<int>
{
    public static readonly NonQueryOperation Instance = new();

    public override bool ResultOwnsConnection => false;

    public override int Run(NpgsqlCommand command) => command.ExecuteNonQuery();

    public override Task<int> RunAsync(NpgsqlCommand command, CancellationToken cancellationToken) => command.ExecuteNonQueryAsync(cancellationToken);
}

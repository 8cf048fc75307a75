using System.Data;
using System.Data.Common;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Storage;
using Npgsql;

namespace EfReplicaInterceptor.Benchmarks.Routing;

/// <summary>Overrides nothing: what EF Core allocates for any registered command interceptor (its event data objects).</summary>
internal sealed class NoOpCommandInterceptor : DbCommandInterceptor;

/// <summary>Overrides nothing: what EF Core allocates for any registered connection interceptor.</summary>
internal sealed class NoOpConnectionInterceptor : DbConnectionInterceptor;

/// <summary>Asks for the context's transaction the way the library's router does (<c>context.Database.CurrentTransaction</c>).</summary>
internal sealed class DatabaseFacadeTransactionProbe : DbCommandInterceptor
{
    public override InterceptionResult<DbDataReader> ReaderExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result)
    {
        GC.KeepAlive(eventData.Context?.Database.CurrentTransaction);
        return result;
    }

    public override ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(
        DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
        => new(ReaderExecuting(command, eventData, result));
}

/// <summary>Asks for the same transaction through the context's scoped transaction manager (already created by EF for the command).</summary>
internal sealed class TransactionManagerProbe : DbCommandInterceptor
{
    public override InterceptionResult<DbDataReader> ReaderExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result)
    {
        GC.KeepAlive(eventData.Context?.GetService<IDbContextTransactionManager>().CurrentTransaction);
        return result;
    }

    public override ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(
        DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
        => new(ReaderExecuting(command, eventData, result));
}

/// <summary>
/// The floor of the library's mechanism and nothing else: every reader command is run on a connection opened from
/// <paramref name="target"/>, as a new command with the same text and cloned parameters, its reader owning the connection
/// (<c>CommandBehavior.CloseConnection</c>), and handed to EF with <c>SuppressWithResult</c>, as the library's read executor
/// does. No decision, no reporting, no retry.
/// </summary>
internal sealed class MoveReadsInterceptor(NpgsqlDataSource target) : DbCommandInterceptor
{
    public override InterceptionResult<DbDataReader> ReaderExecuting(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result)
    {
        var connection = target.OpenConnection();
        return InterceptionResult<DbDataReader>.SuppressWithResult(Clone(command, connection).ExecuteReader(CommandBehavior.CloseConnection));
    }

    public override async ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(
        DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
    {
        var connection = await target.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var reader = await Clone(command, connection).ExecuteReaderAsync(CommandBehavior.CloseConnection, cancellationToken).ConfigureAwait(false);
        return InterceptionResult<DbDataReader>.SuppressWithResult(reader);
    }

    private static NpgsqlCommand Clone(DbCommand command, NpgsqlConnection connection)
    {
        var source = (NpgsqlCommand)command;
        var clone = new NpgsqlCommand(source.CommandText, connection) { CommandTimeout = source.CommandTimeout };
        var parameters = source.Parameters;
        for (var i = 0; i < parameters.Count; i++)
        {
            clone.Parameters.Add(parameters[i].Clone());
        }

        return clone;
    }
}

using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;

namespace EfReplicaInterceptor.Interception;

/// <summary>
/// Tells the connection interceptor that EF is opening a context's connection only to run a reader it is about to create.
/// EF opens its connection before it creates a reader's command, and its <c>ConnectionOpening</c> event looks the same
/// whether a query or the application (<c>Database.OpenConnection()</c>, then Dapper or <c>BeginBinaryImport</c> on
/// <c>GetDbConnection()</c>) asked for it. Only the first may be deferred until the command turns out to need the primary;
/// the second must get a real session at once. The mark is set around the synchronous start of EF's own reader execution
/// (<see cref="RoutedRelationalCommand"/>), where EF raises <c>ConnectionOpening</c>, and holds the context it is for.
/// </summary>
internal static class ReaderOpening
{
    [ThreadStatic]
    private static DbContext? t_context;

    /// <summary>True when EF is opening <paramref name="context"/>'s connection for a reader (the mark is consumed).</summary>
    public static bool Take(DbContext? context)
    {
        if (context is null || !ReferenceEquals(t_context, context))
        {
            return false;
        }

        t_context = null;
        return true;
    }

    public static DbContext? Enter(DbContext? context)
    {
        var previous = t_context;
        t_context = context;
        return previous;
    }

    public static void Exit(DbContext? previous) => t_context = previous;
}

/// <summary>
/// EF's relational command, marking the start of a reader's execution for <see cref="ReaderOpening"/>. Everything else is
/// EF's own: the command text, parameters, logging and interception are untouched.
/// </summary>
internal sealed class RoutedRelationalCommand(
    RelationalCommandBuilderDependencies dependencies, string commandText, string logCommandText, IReadOnlyList<IRelationalParameter> parameters)
    : RelationalCommand(dependencies, commandText, logCommandText, parameters)
{
    public override RelationalDataReader ExecuteReader(RelationalCommandParameterObject parameterObject)
    {
        var previous = ReaderOpening.Enter(parameterObject.Context);
        try
        {
            return base.ExecuteReader(parameterObject);
        }
        finally
        {
            ReaderOpening.Exit(previous);
        }
    }

    public override Task<RelationalDataReader> ExecuteReaderAsync(RelationalCommandParameterObject parameterObject, CancellationToken cancellationToken = default)
    {
        // EF raises ConnectionOpeningAsync before its first real await, so the mark only has to last for the synchronous start.
        var previous = ReaderOpening.Enter(parameterObject.Context);
        try
        {
            return base.ExecuteReaderAsync(parameterObject, cancellationToken);
        }
        finally
        {
            ReaderOpening.Exit(previous);
        }
    }
}

/// <summary>Builds <see cref="RoutedRelationalCommand"/>s instead of EF's (registered by <see cref="EfReplicaOptionsExtension"/>).</summary>
internal sealed class RoutedRelationalCommandBuilderFactory(RelationalCommandBuilderDependencies dependencies) : RelationalCommandBuilderFactory(dependencies)
{
    public override IRelationalCommandBuilder Create() => new Builder(Dependencies);

    private sealed class Builder(RelationalCommandBuilderDependencies dependencies) : RelationalCommandBuilder(dependencies)
    {
        public override IRelationalCommand Build()
        {
            // Built when a query is compiled, and once per context: EF's connection builds the empty command it rents out and
            // fills from the query's template. That one is built directly, without EF's own command built and dropped first.
            if (CommandTextLength == 0 && Parameters.Count == 0)
            {
                return new RoutedRelationalCommand(Dependencies, string.Empty, string.Empty, Parameters);
            }

            var built = base.Build();
            return new RoutedRelationalCommand(Dependencies, built.CommandText, ((RelationalCommand)built).LogCommandText, built.Parameters);
        }
    }
}

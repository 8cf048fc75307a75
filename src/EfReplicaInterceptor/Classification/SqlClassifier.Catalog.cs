using EfReplicaInterceptor.Failover;
using Npgsql;

namespace EfReplicaInterceptor;

public sealed partial class SqlClassifier
{
    private const string VolatileFunctionsQuery = """
        SELECT DISTINCT format('%I.%I', n.nspname, p.proname) AS name
        FROM pg_catalog.pg_proc AS p
        JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
        WHERE p.provolatile = 'v'
          AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
          AND n.nspname NOT LIKE 'pg\_temp\_%'
          AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'
        ORDER BY 1
        """;

    /// <summary>
    /// Lists the volatile functions of the application's own schemas (every schema but <c>pg_catalog</c>,
    /// <c>information_schema</c>, <c>pg_toast</c> and temporary schemas), schema-qualified and quoted where needed
    /// (<c>public.touch_order</c>, <c>"Audit"."LogAccess"</c>), for <see cref="SqlClassifier(IEnumerable{string})"/>.
    /// Meant to run once at start-up against the primary: a function declared <c>VOLATILE</c> (PostgreSQL's default) may write,
    /// so a read that calls one is sent to the primary. Functions of extensions installed in those schemas are included.
    /// </summary>
    /// <remarks>
    /// Runs through <see cref="ServerCall"/> under the primary's read watch, like every statement the library sends: a primary
    /// that hangs while it answers does not hold the cluster's start-up task past the read deadline.
    /// </remarks>
    internal static async Task<IReadOnlyList<string>> LoadVolatileFunctionsAsync(WatchedServer primary, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(primary);
        return await ServerCall.RunAsync<VolatileFunctions, List<string>>(
            primary, primary.WatchRead(commandTimeoutSeconds: 0, cancellationToken), connection: null, default, async: true, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The catalog query: every name it lists.</summary>
    private readonly struct VolatileFunctions : IServerStatement<List<string>>
    {
        public NpgsqlCommand? CreateCommand(NpgsqlConnection connection) => new(VolatileFunctionsQuery, connection);

        public async Task<List<string>> RunAsync(NpgsqlConnection connection, NpgsqlCommand? command)
        {
            var names = new List<string>();
            await using var owned = command!;
            await using var reader = await owned.ExecuteReaderAsync(CancellationToken.None).ConfigureAwait(false);
            while (await reader.ReadAsync(CancellationToken.None).ConfigureAwait(false))
            {
                names.Add(reader.GetString(0));
            }

            return names;
        }

        public List<string> Run(NpgsqlConnection connection, NpgsqlCommand? command) => throw new NotSupportedException("The catalog is read asynchronously.");

        public CallHandover Succeeded(List<string> result, OperationWatch watch, NpgsqlConnection connection) => CallHandover.None;

        public void Failed(Exception exception, FailurePhase phase, NpgsqlConnection? connection)
        {
        }
    }
}

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
    internal static async Task<IReadOnlyList<string>> LoadVolatileFunctionsAsync(NpgsqlDataSource primary, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(primary);
        var names = new List<string>();
        await using var command = primary.CreateCommand(VolatileFunctionsQuery);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            names.Add(reader.GetString(0));
        }

        return names;
    }
}

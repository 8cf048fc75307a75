using System.Text;
using System.Text.RegularExpressions;
using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.Testing;
using EfReplicaInterceptor.Tests.Classification;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using NpgsqlTypes;

namespace EfReplicaInterceptor.IntegrationTests.Classification;

/// <summary>
/// The hot standby is the oracle of the classifier: every corpus statement, and every command EF Core sends for the corpus's
/// query and save shapes, runs on a real standby; whatever the standby refuses because it is a standby must have been
/// classified for the primary. Statements run inside a transaction that is rolled back; one that cannot run in a transaction
/// block is run again on its own. Failures for any other reason are not passes: each must be expected by the corpus
/// (<c>-- oracle-error:</c>) or the test fails, so the schema below has to give every statement what it needs.
/// </summary>
[NonParallelizable]
public sealed class StandbyOracleTests
{
    /// <summary>What the file corpus needs (its statements name these objects).</summary>
    private const string FileCorpusSchema = """
        CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text, created_at timestamptz NOT NULL DEFAULT now());
        CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers (id), status text NOT NULL DEFAULT 'new',
            total numeric(12, 2) NOT NULL DEFAULT 0, created_at timestamptz NOT NULL DEFAULT now(), data jsonb NOT NULL DEFAULT '{}',
            tags text[] NOT NULL DEFAULT '{}', note text);
        CREATE TABLE order_items (order_id int NOT NULL REFERENCES orders (id), line int NOT NULL, sku text, qty int, price numeric(10, 2), PRIMARY KEY (order_id, line));
        CREATE TABLE audit_log (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), message text);
        CREATE TABLE "update" ("select" int, "from" text);
        CREATE TABLE t (id int, v text, update_count int, "for" int);
        CREATE SEQUENCE order_seq;
        CREATE SEQUENCE "EntityFrameworkHiLoSequence" INCREMENT BY 10;
        CREATE SCHEMA audit;
        CREATE FUNCTION audit.log_access(msg text) RETURNS void LANGUAGE sql VOLATILE AS $$ INSERT INTO audit_log (message) VALUES (msg) $$;
        CREATE FUNCTION touch_order(order_id int) RETURNS int LANGUAGE sql VOLATILE AS $$ UPDATE orders SET note = 'touched' WHERE id = order_id RETURNING id $$;
        CREATE FUNCTION order_total(o orders) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$ SELECT o.total $$;
        CREATE FUNCTION order_touch(o orders) RETURNS int LANGUAGE sql VOLATILE AS $$ UPDATE orders SET note = 'x' WHERE id = o.id RETURNING 1 $$;
        CREATE PROCEDURE archive_orders() LANGUAGE sql AS $$ UPDATE orders SET status = 'archived' WHERE status = 'done' $$;
        CREATE VIEW v_orders AS SELECT o.id, o.status, c.name FROM orders AS o JOIN customers AS c ON c.id = o.customer_id;
        CREATE MATERIALIZED VIEW order_totals AS SELECT customer_id, sum(total) AS total FROM orders GROUP BY customer_id;
        CREATE UNIQUE INDEX order_totals_customer ON order_totals (customer_id);
        CREATE INDEX orders_tags ON orders USING gin (tags) WITH (fastupdate = on);
        CREATE TYPE order_status AS ENUM ('new', 'paid', 'done');
        CREATE ROLE corpus_reader NOLOGIN;
        INSERT INTO customers VALUES (1, 'Ann', 'ann@example.com'), (2, 'Bob', NULL);
        INSERT INTO orders (customer_id, status, total, data, tags) VALUES (1, 'new', 10, '{"a": 1}', '{x,y}'), (2, 'paid', 25.5, '{"b": {"c": 2}}', '{}');
        INSERT INTO order_items VALUES (1, 1, 'A', 2, 5), (2, 1, 'B', 1, 25.5);
        INSERT INTO t VALUES (1, 'a', 1, 1);
        REFRESH MATERIALIZED VIEW order_totals;
        SELECT lo_create(424242);
        """;

    /// <summary>The keyless entity's view, which EF's create script leaves out.</summary>
    private const string EfModelExtras = """
        CREATE VIEW blog_summaries AS
        SELECT b."Id" AS "BlogId", b."Name", count(p."Id")::int AS "PostCount"
        FROM "Blogs" AS b LEFT JOIN "Posts" AS p ON p."BlogId" = b."Id"
        GROUP BY b."Id", b."Name";
        """;

    private static readonly Regex NamedParameter = new(@"(?<![@:\w])[@:](?<name>[A-Za-z_]\w*)", RegexOptions.CultureInvariant);
    private static readonly Regex PositionalParameter = new(@"\$(?<n>\d+)", RegexOptions.CultureInvariant);
    private static readonly Regex CopyProtocol = new(@"^\s*COPY\b.*\bSTD(IN|OUT)\b", RegexOptions.CultureInvariant | RegexOptions.IgnoreCase | RegexOptions.Singleline);
    private static readonly Regex CopyIn = new(@"\bFROM\s+STDIN\b", RegexOptions.CultureInvariant | RegexOptions.IgnoreCase);
    private static readonly Regex BinaryCopy = new(@"\bbinary\b", RegexOptions.CultureInvariant | RegexOptions.IgnoreCase);

    private PostgresReplicaSet _set = null!;
    private IReadOnlyList<string> _volatileFunctions = [];
    private SqlClassifier _classifier = null!;

    private enum Verdict
    {
        /// <summary>Ran on the standby.</summary>
        RanFine,

        /// <summary>Refused by the standby as read-only (25006) or because it is in recovery.</summary>
        ReadOnly,

        /// <summary>Failed on the standby in another way but runs on the primary: needs the primary all the same.</summary>
        StandbyOnlyFailure,

        /// <summary>Failed for a reason that has nothing to do with the standby, as the corpus expects.</summary>
        ExpectedError,

        /// <summary>Failed for a reason that has nothing to do with the standby, and the corpus does not expect it.</summary>
        UnexpectedError,
    }

    [OneTimeSetUp]
    public async Task StartServersAsync()
    {
        _set = await PostgresReplicaSet.StartAsync(standbys: 1);
        await _set.Primary.ExecuteAsync(FileCorpusSchema);

        var options = EfCorpus.Options(_set.Primary.ConnectionString);
        await using (var context = new CorpusContext(options))
        {
            await _set.Primary.ExecuteAsync(context.Database.GenerateCreateScript());
            await _set.Primary.ExecuteAsync(EfModelExtras);
            var blog = new Blog { Name = "Hot news", CreatedOn = DateTime.UtcNow, Tags = ["efcore", "x"], Scores = [5, 7], Rating = 4.5m, Settings = new BlogSettings { Editors = ["alice"] } };
            blog.Posts.Add(new Post { Title = "First", Views = 12, PublishedOn = DateTime.UtcNow, Comments = [new Comment { Text = "nice" }], Labels = [new Label { Name = "db" }] });
            context.Blogs.Add(blog);
            await context.SaveChangesAsync();
        }

        await _set.WaitForReplayAsync(_set.Standby);

        await using var primary = NpgsqlDataSource.Create(_set.Primary.ConnectionString);
        var deadlines = new ServerDeadlines(TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(2), TimeProvider.System);
        var watched = new WatchedServer("the primary", primary, new ServerLiveness(TimeProvider.System), deadlines);
        _volatileFunctions = await SqlClassifier.LoadVolatileFunctionsAsync(watched, CancellationToken.None);
        _classifier = new SqlClassifier(_volatileFunctions);
    }

    [OneTimeTearDown]
    public async Task StopServersAsync()
    {
        if (_set is not null)
        {
            await _set.DisposeAsync();
        }

        // Written by the standby for writes.sql's COPY ... TO '/tmp/...' (which is why that statement needs the primary).
        File.Delete("/tmp/efreplica-corpus-orders.csv");
    }

    [Test]
    public void The_applications_volatile_functions_are_loaded_from_the_primary()
    {
        TestContext.Out.WriteLine("Volatile functions: " + string.Join(", ", _volatileFunctions));
        Assert.Multiple(() =>
        {
            Assert.That(_volatileFunctions, Does.Contain("audit.log_access"));
            Assert.That(_volatileFunctions, Does.Contain("public.touch_order"));
            Assert.That(_volatileFunctions, Does.Contain("public.order_touch"));
            Assert.That(_volatileFunctions, Does.Not.Contain("public.order_total"), "immutable");
            Assert.That(_volatileFunctions.Where(f => f.StartsWith("pg_catalog.", StringComparison.Ordinal) || f.StartsWith("information_schema.", StringComparison.Ordinal)), Is.Empty);
            Assert.That(_classifier.Classify("SELECT touch_order(1)"), Is.EqualTo(SqlClassification.NeedsPrimary(RoutingReason.WriteFunction)));
            Assert.That(_classifier.Classify("SELECT order_total(o) FROM orders o"), Is.EqualTo(SqlClassification.PlainRead));
        });
    }

    [Test]
    public async Task Every_corpus_statement_the_standby_refuses_is_classified_for_the_primary()
    {
        var results = new List<(CorpusEntry Entry, Verdict Verdict, string Detail, SqlClassification Classification)>();
        foreach (var entry in SqlCorpus.Entries)
        {
            var (verdict, detail) = await JudgeAsync(entry);
            results.Add((entry, verdict, detail, _classifier.Classify(entry.Sql)));
        }

        var report = new StringBuilder();
        report.AppendLine($"Standby oracle over {results.Count} corpus statements:");
        report.AppendLine($"  rejected as read-only / in recovery: {Count(Verdict.ReadOnly)}");
        report.AppendLine($"  failed only on the standby (ran on the primary): {Count(Verdict.StandbyOnlyFailure)}");
        report.AppendLine($"  ran fine: {Count(Verdict.RanFine)} (classified for a replica: {results.Count(r => r.Verdict == Verdict.RanFine && r.Classification.IsReplicaSafe)})");
        report.AppendLine($"  other error, expected by the corpus: {Count(Verdict.ExpectedError)}");
        report.AppendLine($"  other error, unexpected: {Count(Verdict.UnexpectedError)}");
        Section("Ran fine on the standby but classified for the primary (conservative):", r => r.Verdict == Verdict.RanFine && !r.Classification.IsReplicaSafe);
        Section("Failed only on the standby:", r => r.Verdict == Verdict.StandbyOnlyFailure);
        Section("Expected errors:", r => r.Verdict == Verdict.ExpectedError);
        TestContext.Out.WriteLine(report.ToString());

        var unsafeReads = results.Where(r => r.Verdict is Verdict.ReadOnly or Verdict.StandbyOnlyFailure && r.Classification.IsReplicaSafe).ToList();
        var unexpected = results.Where(r => r.Verdict == Verdict.UnexpectedError).ToList();
        var readsThatDidNotRun = results.Where(r => r.Classification.IsReplicaSafe && r.Verdict != Verdict.RanFine).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(unsafeReads.Select(Describe), Is.Empty, "refused by the standby, yet classified as a read");
            Assert.That(readsThatDidNotRun.Select(Describe), Is.Empty, "classified as a read, yet did not run on the standby");
            Assert.That(unexpected.Select(Describe), Is.Empty, "failed for a reason the corpus does not expect (missing schema?)");
            Assert.That(Count(Verdict.ReadOnly), Is.GreaterThanOrEqualTo(200));
            Assert.That(results.Count(r => r.Classification.IsReplicaSafe), Is.GreaterThanOrEqualTo(130));
        });

        int Count(Verdict verdict) => results.Count(r => r.Verdict == verdict);

        void Section(string title, Func<(CorpusEntry Entry, Verdict Verdict, string Detail, SqlClassification Classification), bool> filter)
        {
            report.AppendLine(title);
            foreach (var result in results.Where(filter))
            {
                report.AppendLine("  " + Describe(result));
            }
        }
    }

    [Test]
    public async Task Every_EF_command_the_standby_refuses_is_classified_for_the_primary_and_every_EF_read_runs_there()
    {
        var capture = new CommandCapture(suppress: false);
        var options = EfCorpus.Options(_set.Standby.ConnectionString, capture);
        var refused = 0;
        var ranFine = 0;
        var failures = new List<string>();
        foreach (var shape in EfCorpus.Shapes())
        {
            capture.Clear();
            await using (var context = new CorpusContext(options))
            {
                try
                {
                    await shape.Run(context);
                }
                catch (Exception exception) when (exception is DbUpdateException or PostgresException or InvalidOperationException)
                {
                    // Judged command by command below.
                }
            }

            for (var i = 0; i < capture.Commands.Count; i++)
            {
                var command = capture.Commands[i];
                var expected = shape.Expected[Math.Min(i, shape.Expected.Length - 1)];
                var classification = _classifier.Classify(command.Text);
                if (command.Error is null)
                {
                    ranFine++;
                    if (expected.IsReplicaSafe && !classification.IsReplicaSafe)
                    {
                        failures.Add($"{shape.Name}: ran on the standby, expected a read, classified {classification.Reason}:\n{command.Text}");
                    }

                    continue;
                }

                var error = FindPostgresException(command.Error);
                if (error is not null && IsStandbyRefusal(error))
                {
                    refused++;
                    if (classification.IsReplicaSafe)
                    {
                        failures.Add($"{shape.Name}: refused by the standby ({error.SqlState} {error.MessageText}) yet classified as a read:\n{command.Text}");
                    }
                }
                else
                {
                    failures.Add($"{shape.Name}: failed on the standby for another reason: {command.Error.Message}\n{command.Text}");
                }
            }

            if (shape.Expected[0].IsReplicaSafe && capture.Commands.Any(c => c.Error is not null))
            {
                failures.Add($"{shape.Name}: a read shape did not run on the standby.");
            }
        }

        TestContext.Out.WriteLine($"EF commands on the standby: {ranFine} ran fine, {refused} refused as read-only (all classified for the primary).");
        Assert.Multiple(() =>
        {
            Assert.That(failures, Is.Empty);
            Assert.That(refused, Is.GreaterThanOrEqualTo(15));
            Assert.That(ranFine, Is.GreaterThanOrEqualTo(90));
        });
    }

    private static string Describe((CorpusEntry Entry, Verdict Verdict, string Detail, SqlClassification Classification) result) =>
        $"{result.Entry.Source} [{RoutingReasons.GetName(result.Classification.Target)}/{RoutingReasons.GetName(result.Classification.Reason)}] {result.Detail}: {OneLine(result.Entry.Sql)}";

    private static string OneLine(string sql)
    {
        var line = string.Join(' ', sql.Split(['\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries)).Trim();
        return line.Length <= 100 ? line : line[..100] + "…";
    }

    private static PostgresException? FindPostgresException(Exception? exception)
    {
        for (; exception is not null; exception = exception.InnerException)
        {
            if (exception is PostgresException postgres)
            {
                return postgres;
            }
        }

        return null;
    }

    /// <summary>
    /// The standby refuses a statement because it is a standby: 25006 (read-only transaction, and "cannot execute ... during
    /// recovery"), or any error whose message or hint is about recovery or hot standby ("recovery is in progress" 55000,
    /// "cannot assign OIDs during recovery" XX000, "cannot use serializable mode in a hot standby" 0A000, ...).
    /// </summary>
    private static bool IsStandbyRefusal(PostgresException error) =>
        error.SqlState == PostgresErrorCodes.ReadOnlySqlTransaction
        || Mentions(error.MessageText) || Mentions(error.Hint) || Mentions(error.Detail);

    private static bool Mentions(string? text) =>
        text is not null && (text.Contains("recovery", StringComparison.OrdinalIgnoreCase) || text.Contains("hot standby", StringComparison.OrdinalIgnoreCase));

    private async Task<(Verdict Verdict, string Detail)> JudgeAsync(CorpusEntry entry)
    {
        var error = await RunAsync(_set.Standby, entry.Sql, inTransaction: true);
        if (error?.SqlState == PostgresErrorCodes.ActiveSqlTransaction)
        {
            // "cannot run inside a transaction block" (VACUUM, CREATE DATABASE, ALTER SYSTEM, ...): a standby cannot be changed
            // by running it on its own, so run it so.
            error = await RunAsync(_set.Standby, entry.Sql, inTransaction: false);
        }

        if (error is null)
        {
            return (Verdict.RanFine, entry.OracleError is null ? "ran" : $"ran (the corpus expected {entry.OracleError})");
        }

        var detail = $"{error.SqlState} {error.MessageText}";
        if (IsStandbyRefusal(error))
        {
            return (Verdict.ReadOnly, detail);
        }

        if (entry.OracleError == error.SqlState)
        {
            return (Verdict.ExpectedError, detail);
        }

        var onPrimary = await RunAsync(_set.Primary, entry.Sql, inTransaction: true);
        return onPrimary is null
            ? (Verdict.StandbyOnlyFailure, detail + " (runs on the primary)")
            : (Verdict.UnexpectedError, $"{detail}; on the primary {onPrimary.SqlState} {onPrimary.MessageText}");
    }

    /// <summary>Runs <paramref name="sql"/> on a fresh connection (so no session state carries over), rolled back; returns the server's error, if any.</summary>
    private static async Task<PostgresException?> RunAsync(PostgresServer server, string sql, bool inTransaction)
    {
        var builder = new NpgsqlConnectionStringBuilder(server.ConnectionString) { Pooling = false, CommandTimeout = 30 };
        await using var connection = new NpgsqlConnection(builder.ConnectionString);
        await connection.OpenAsync();
        try
        {
            if (inTransaction)
            {
                await using var begin = new NpgsqlCommand("BEGIN", connection);
                await begin.ExecuteNonQueryAsync();
            }

            try
            {
                await ExecuteAsync(connection, sql);
                return null;
            }
            catch (PostgresException exception)
            {
                return exception;
            }
        }
        finally
        {
            if (inTransaction && connection.FullState == System.Data.ConnectionState.Open)
            {
                // The statement may itself have ended the transaction (COMMIT, ROLLBACK): ROLLBACK then only warns.
                await using var rollback = new NpgsqlCommand("ROLLBACK", connection);
                await rollback.ExecuteNonQueryAsync();
            }
        }
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql)
    {
        if (CopyProtocol.IsMatch(sql))
        {
            // COPY ... FROM STDIN / TO STDOUT speak the COPY sub-protocol: read everything out, or send no rows in.
            if (BinaryCopy.IsMatch(sql))
            {
                await using var copy = await connection.BeginRawBinaryCopyAsync(sql);
                if (copy.CanRead)
                {
                    await copy.CopyToAsync(Stream.Null);
                }
            }
            else if (CopyIn.IsMatch(sql))
            {
                await using var writer = await connection.BeginTextImportAsync(sql);
            }
            else
            {
                using var export = await connection.BeginTextExportAsync(sql);
                await export.ReadToEndAsync();
            }

            return;
        }

        await using var command = new NpgsqlCommand(sql, connection);
        AddNullParameters(command, sql);
        await using var reader = await command.ExecuteReaderAsync();
        do
        {
            while (await reader.ReadAsync())
            {
            }
        }
        while (await reader.NextResultAsync());
    }

    /// <summary>Binds NULL (of a type the server infers) to each placeholder: <c>$1</c>, or <c>@name</c> / <c>:name</c>.</summary>
    private static void AddNullParameters(NpgsqlCommand command, string sql)
    {
        if (sql.TrimStart().StartsWith("PREPARE", StringComparison.OrdinalIgnoreCase))
        {
            return; // $1 there belongs to the prepared statement, not to this command.
        }

        var positional = PositionalParameter.Matches(sql).Select(m => int.Parse(m.Groups["n"].Value, System.Globalization.CultureInfo.InvariantCulture)).DefaultIfEmpty(0).Max();
        if (positional > 0)
        {
            for (var i = 0; i < positional; i++)
            {
                command.Parameters.Add(new NpgsqlParameter { Value = DBNull.Value, NpgsqlDbType = NpgsqlDbType.Unknown });
            }

            return;
        }

        foreach (var name in NamedParameter.Matches(sql).Select(m => m.Groups["name"].Value).Distinct(StringComparer.Ordinal))
        {
            command.Parameters.Add(new NpgsqlParameter(name, NpgsqlDbType.Unknown) { Value = DBNull.Value });
        }
    }
}

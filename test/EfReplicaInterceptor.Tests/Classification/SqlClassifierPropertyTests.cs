using System.Text;

namespace EfReplicaInterceptor.Tests.Classification;

/// <summary>
/// Seeded random tests: statements are rebuilt token by token with random whitespace, line comments, nested block comments
/// (holding keywords, quotes and semicolons), random letter case, and placed among reads whose strings, dollar quotes and quoted
/// identifiers hold keywords. Writes must keep their classification; reads must stay reads. Each run uses a fixed seed and a fresh
/// one; a failure prints the seed, the case number and the text (set CLASSIFIER_FUZZ_SEED to replay a seed).
/// </summary>
public sealed class SqlClassifierPropertyTests
{
    private const int CasesPerSeed = 25_000;
    private const int FixedSeed = 3_0521_2025;

    private static readonly SqlClassifier Classifier = new(["audit.log_access", "touch_order"]);

    // Templates: tokens separated by single spaces ("·" is a space inside a token); no decoration is ever put inside a token.
    private static readonly (string Template, RoutingReason Reason)[] Writes =
    [
        ("INSERT INTO audit_log ( message ) VALUES ( 'x' )", RoutingReason.WriteStatement),
        ("INSERT INTO orders ( customer_id ) SELECT id FROM customers RETURNING id", RoutingReason.WriteStatement),
        ("INSERT INTO customers ( id , name ) VALUES ( 1 , 'a' ) ON CONFLICT ( id ) DO UPDATE SET name = EXCLUDED . name", RoutingReason.WriteStatement),
        ("UPDATE orders SET note = 'n' WHERE id = @p0", RoutingReason.WriteStatement),
        ("UPDATE \"Blogs\" SET \"Name\" = @p0 WHERE \"Id\" = @p1 AND xmin = @p2 RETURNING xmin", RoutingReason.WriteStatement),
        ("DELETE FROM audit_log WHERE id < $1", RoutingReason.WriteStatement),
        ("DELETE FROM orders AS o USING customers AS c WHERE c . id = o . customer_id", RoutingReason.WriteStatement),
        ("MERGE INTO customers AS c USING customers AS s ON c . id = s . id WHEN MATCHED THEN DO NOTHING", RoutingReason.WriteStatement),
        ("WITH d AS ( DELETE FROM audit_log RETURNING id ) SELECT count ( * ) FROM d", RoutingReason.WriteStatement),
        ("WITH a AS ( SELECT 1 ) , b AS ( SELECT * FROM ( WITH c AS ( UPDATE t SET v = 'x' RETURNING id ) SELECT * FROM c ) AS s ) SELECT * FROM a , b", RoutingReason.WriteStatement),
        ("WITH RECURSIVE n ( i ) AS ( SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3 ) INSERT INTO audit_log ( message ) SELECT i :: text FROM n", RoutingReason.WriteStatement),
        ("SELECT id INTO TEMP copy_of_orders FROM orders", RoutingReason.WriteStatement),
        ("CREATE TABLE x AS SELECT * FROM orders", RoutingReason.WriteStatement),
        ("CREATE INDEX CONCURRENTLY i ON orders ( status )", RoutingReason.WriteStatement),
        ("ALTER TABLE orders ADD COLUMN c int", RoutingReason.WriteStatement),
        ("DROP TABLE IF EXISTS orders CASCADE", RoutingReason.WriteStatement),
        ("TRUNCATE audit_log", RoutingReason.WriteStatement),
        ("GRANT SELECT ON orders TO reader", RoutingReason.WriteStatement),
        ("COMMENT ON TABLE orders IS 'SELECT·only'", RoutingReason.WriteStatement),
        ("COPY orders FROM STDIN", RoutingReason.WriteStatement),
        ("COPY ( DELETE FROM audit_log RETURNING id ) TO STDOUT", RoutingReason.WriteStatement),
        ("EXPLAIN ANALYZE INSERT INTO audit_log DEFAULT VALUES", RoutingReason.WriteStatement),
        ("EXPLAIN ( ANALYZE , BUFFERS ) UPDATE orders SET note = 'e'", RoutingReason.WriteStatement),
        ("VACUUM ( ANALYZE ) orders", RoutingReason.WriteStatement),
        ("REFRESH MATERIALIZED VIEW CONCURRENTLY order_totals", RoutingReason.WriteStatement),
        ("CALL archive_orders ( )", RoutingReason.WriteStatement),
        ("DO $$·BEGIN·PERFORM·1·;·END·$$", RoutingReason.WriteStatement),
        ("SELECT b.\"Id\",b.\"Name\",·p.\"Title\" FROM \"Blogs\" AS b JOIN \"Posts\" AS p ON b.\"Id\"=p.\"BlogId\" FOR UPDATE OF b", RoutingReason.LockingRead),
        ("SELECT o.\"Id\",·o.\"touch_order\" FROM orders AS o", RoutingReason.WriteFunction),
        ("DELETE FROM \"Posts\" AS p USING \"Blogs\" AS b WHERE p.\"BlogId\"=b.\"Id\"", RoutingReason.WriteStatement),
        ("SELECT * FROM orders FOR UPDATE", RoutingReason.LockingRead),
        ("SELECT * FROM orders WHERE id = 1 FOR NO KEY UPDATE OF orders SKIP LOCKED", RoutingReason.LockingRead),
        ("SELECT * FROM orders FOR KEY SHARE NOWAIT", RoutingReason.LockingRead),
        ("SELECT * FROM ( SELECT id FROM orders FOR SHARE ) AS s", RoutingReason.LockingRead),
        ("WITH l AS ( SELECT id FROM orders FOR UPDATE SKIP LOCKED ) SELECT * FROM l", RoutingReason.LockingRead),
        ("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE", RoutingReason.LockingRead),
        ("SELECT nextval ( 'order_seq' )", RoutingReason.WriteFunction),
        ("SELECT pg_catalog . setval ( 'order_seq' , 5 )", RoutingReason.WriteFunction),
        ("SELECT \"nextval\" ( 'order_seq' ) FROM orders", RoutingReason.WriteFunction),
        ("SELECT id FROM orders WHERE pg_try_advisory_xact_lock ( id )", RoutingReason.WriteFunction),
        ("SELECT pg_notify ( 'c' , 'p' )", RoutingReason.WriteFunction),
        ("SELECT set_config ( 'a.b' , 'c' , false )", RoutingReason.WriteFunction),
        ("SELECT txid_current ( )", RoutingReason.WriteFunction),
        ("SELECT pg_current_wal_lsn ( )", RoutingReason.WriteFunction),
        ("SELECT lo_unlink ( 1 )", RoutingReason.WriteFunction),
        ("SELECT audit . log_access ( 'x' )", RoutingReason.WriteFunction),
        ("SELECT o . id FROM orders AS o WHERE touch_order ( o . id ) > 0", RoutingReason.WriteFunction),
        ("VALUES ( nextval ( 'order_seq' ) )", RoutingReason.WriteFunction),
        ("SET search_path TO public", RoutingReason.SessionStatement),
        ("SET LOCAL statement_timeout = '5s'", RoutingReason.SessionStatement),
        ("RESET ALL", RoutingReason.SessionStatement),
        ("BEGIN ISOLATION LEVEL SERIALIZABLE", RoutingReason.SessionStatement),
        ("COMMIT", RoutingReason.SessionStatement),
        ("ROLLBACK TO SAVEPOINT s", RoutingReason.SessionStatement),
        ("PREPARE q ( int ) AS SELECT $1", RoutingReason.SessionStatement),
        ("EXECUTE q ( 1 )", RoutingReason.SessionStatement),
        ("LISTEN channel", RoutingReason.SessionStatement),
        ("NOTIFY channel , 'x'", RoutingReason.SessionStatement),
        ("DISCARD ALL", RoutingReason.SessionStatement),
        ("DECLARE c CURSOR FOR SELECT * FROM orders", RoutingReason.SessionStatement),
    ];

    private static readonly string[] Reads =
    [
        "SELECT 1",
        "SELECT b.\"Id\",b.\"update\",·b.\"Name\",·p.\"delete\" FROM \"Blogs\" AS b LEFT JOIN \"Posts\" AS p ON b.\"Id\"=p.\"BlogId\" ORDER BY b.\"Id\",p.\"for\"",
        "SELECT * FROM orders WHERE id = @p0 ORDER BY id LIMIT @p",
        "SELECT b . \"Id\" , b . \"Name\" FROM \"Blogs\" AS b LEFT JOIN \"Posts\" AS p ON b . \"Id\" = p . \"BlogId\" WHERE b . \"Name\" ILIKE @term ORDER BY b . \"Id\" LIMIT @p",
        "SELECT id FROM orders WHERE customer_id = ANY ( @ids ) AND tags @> ARRAY [ 'x' ] AND data ->> 'a' = 'for·update'",
        "WITH RECURSIVE n ( i ) AS ( SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3 ) SELECT sum ( i ) FROM n",
        "WITH big AS MATERIALIZED ( SELECT * FROM orders ) SELECT count ( * ) FROM big",
        "SELECT substring ( note FOR 3 ) , overlay ( status PLACING 'x' FROM 1 FOR 2 ) FROM orders",
        "SELECT * FROM orders ORDER BY id FETCH FIRST 3 ROWS WITH TIES",
        "SELECT id , row_number ( ) OVER ( PARTITION BY customer_id ORDER BY total DESC ) FROM orders",
        "SELECT id FROM orders UNION SELECT id FROM customers EXCEPT SELECT 1",
        "( SELECT 1 ) UNION ALL ( SELECT 2 )",
        "SELECT * FROM orders o CROSS JOIN LATERAL ( SELECT count ( * ) FROM order_items i WHERE i . order_id = o . id ) AS n",
        "SELECT t . update , t . for , \"insert\" FROM t",
        "SELECT 1 AS update , 2 AS into , 3 AS delete",
        "SELECT update_count , insert_date , for_update FROM t",
        "SELECT 'INSERT·INTO·x·;·DELETE·FROM·y·;·--' AS s , $$·UPDATE·z·$$ AS d , E'\\'·;·DROP·TABLE·x·;·--' AS e",
        "SELECT $body$·FOR·UPDATE·;·nextval('s')·$body$ , \"nextval\" FROM t",
        "SELECT 1 FOR READ ONLY",
        "VALUES ( 1 , 'one' ) , ( 2 , 'two' )",
        "TABLE orders",
        "SHOW work_mem",
        "EXPLAIN ( ANALYZE , FORMAT JSON ) SELECT * FROM orders",
        "EXPLAIN ANALYZE VERBOSE SELECT 1",
        "COPY ( SELECT id FROM orders ) TO STDOUT WITH ( FORMAT csv )",
        "COPY orders ( id , status ) TO STDOUT",
        "SELECT now ( ) , random ( ) , gen_random_uuid ( ) , current_setting ( 'work_mem' ) , pg_last_wal_replay_lsn ( )",
        "SELECT count ( * ) :: int FROM \"Posts\" AS p WHERE p . \"PublishedOn\" >= @since",
        "SELECT x . * FROM jsonb_each_text ( '{\"update\":\"1\"}' ) AS x",
        "SELECT o . order_total FROM orders AS o",
        "SELECT lo_get ( 1 ) , nextval_count FROM t",
    ];

    private static readonly string[] NoiseReads =
    [
        "SELECT 'DELETE·FROM·orders;·--' AS s",
        "SELECT 'it''s·;·UPDATE·t·SET·v·=·1' AS s",
        "SELECT E'\\'·;·INSERT·INTO·t·VALUES·(1)·;·--' AS e",
        "SELECT $$·;·CREATE·TABLE·x·()·;·$$",
        "SELECT $q$·FOR·UPDATE·$x$·nextval('s')·$q$",
        "SELECT \"for·update\" FROM ( SELECT 1 AS \"for·update\" ) AS \"delete\"",
        "SELECT U&'\\0027·;·DROP·TABLE·t·;·--' AS u",
        "SELECT 1 AS \"/*\" , 2 AS \"--\"",
        "VALUES ( 'SELECT·*·INTO·x·FROM·y' )",
        "SHOW search_path",
    ];

    private static readonly string[] CommentWords =
    [
        "DELETE FROM orders", "INSERT INTO", "FOR UPDATE", "SELECT", "nextval('s')", "'", "\"", "$$", "$a$", ";", "--", "E'\\'", "INTO", "*", "/", "update",
    ];

    public static IEnumerable<int> Seeds()
    {
        var replay = Environment.GetEnvironmentVariable("CLASSIFIER_FUZZ_SEED");
        if (int.TryParse(replay, out var seed))
        {
            yield return seed;
            yield break;
        }

        yield return FixedSeed;
        yield return Random.Shared.Next();
    }

    [TestCaseSource(nameof(Seeds))]
    public void Decorated_writes_never_become_reads(int seed)
    {
        var random = new Random(seed);
        for (var i = 0; i < CasesPerSeed; i++)
        {
            var (template, reason) = Writes[random.Next(Writes.Length)];
            var text = Batch(random, Decorate(random, template));
            var classification = Classifier.Classify(text);
            if (classification != SqlClassification.NeedsPrimary(reason))
            {
                Assert.Fail($"Seed {seed}, case {i}: expected primary/{reason}, got {classification.Target}/{classification.Reason} for:\n{text}");
            }
        }

        TestContext.Out.WriteLine($"Seed {seed}: {CasesPerSeed} decorated writes, all kept their classification.");
    }

    [TestCaseSource(nameof(Seeds))]
    public void Decorated_reads_stay_reads(int seed)
    {
        var random = new Random(seed);
        for (var i = 0; i < CasesPerSeed; i++)
        {
            var text = Decorate(random, Reads[random.Next(Reads.Length)]);
            var count = random.Next(3);
            for (var n = 0; n < count; n++)
            {
                var other = Decorate(random, random.Next(2) == 0 ? Reads[random.Next(Reads.Length)] : NoiseReads[random.Next(NoiseReads.Length)]);
                text = random.Next(2) == 0 ? other + Separator(random) + ";" + Separator(random) + text : text + Separator(random) + ";" + Separator(random) + other;
            }

            if (random.Next(4) == 0)
            {
                text = "-- " + Word(random) + "\n\n" + text + (random.Next(2) == 0 ? ";" : string.Empty);
            }

            var classification = Classifier.Classify(text);
            if (classification != SqlClassification.PlainRead)
            {
                Assert.Fail($"Seed {seed}, case {i}: expected a read, got {classification.Target}/{classification.Reason} for:\n{text}");
            }
        }

        TestContext.Out.WriteLine($"Seed {seed}: {CasesPerSeed} decorated reads, all stayed reads.");
    }

    [TestCaseSource(nameof(Seeds))]
    public void Random_text_never_throws_and_never_hides_a_later_write(int seed)
    {
        // Fragments of SQL and of its delimiters glued at random: unterminated strings, comments and dollar quotes, stray
        // characters, NULs, lone surrogates. Classification always returns. And a write without quotes or dollars, on its own
        // lines after the noise, is either seen or the text is unrecognized: nothing the noise leaves open can be closed by
        // the write, so it can never turn into a read.
        string[] fragments =
        [
            "SELECT", "select", " ", "\n", "\r", "\t", "'", "''", "\"", "E'", "e'\\", "U&'", "U&\"", "$", "$$", "$a$", "$1", "@p", ":",
            "::", "--", "/*", "*/", "(", ")", ";", ",", ".", "\0", "\\", "{", "}", "FOR", "UPDATE", "INTO", "nextval", "1", "1.5e",
            "x", "\uD800", "\u00e9", "AS", "WITH",
        ];
        var writes = Writes.Where(w => w.Template.IndexOfAny(['\'', '"', '$']) < 0).ToArray();
        var random = new Random(seed);
        var builder = new StringBuilder();
        for (var i = 0; i < CasesPerSeed; i++)
        {
            builder.Clear();
            var length = random.Next(1, 30);
            for (var n = 0; n < length; n++)
            {
                builder.Append(fragments[random.Next(fragments.Length)]);
            }

            var noise = builder.ToString();
            var text = noise + "\n;\n" + writes[random.Next(writes.Length)].Template.Replace('·', ' ');
            SqlClassification classification;
            try
            {
                classification = Classifier.Classify(text);
                _ = Classifier.Classify(noise);
                _ = Classifier.ClassifyCached(noise);
            }
            catch (Exception exception)
            {
                Assert.Fail($"Seed {seed}, case {i}: {exception.GetType().Name} for:\n{text}");
                return;
            }

            if (classification.IsReplicaSafe)
            {
                Assert.Fail($"Seed {seed}, case {i}: a write after noise was classified as a read:\n{text}");
            }
        }

        TestContext.Out.WriteLine($"Seed {seed}: {CasesPerSeed} random texts, none threw, no write hidden.");
    }

    private static string Batch(Random random, string statement)
    {
        var before = random.Next(3);
        var after = random.Next(3);
        var builder = new StringBuilder();
        for (var i = 0; i < before; i++)
        {
            builder.Append(Decorate(random, NoiseOrRead(random))).Append(Separator(random)).Append(';').Append(Separator(random));
        }

        builder.Append(statement);
        for (var i = 0; i < after; i++)
        {
            builder.Append(Separator(random)).Append(';').Append(Separator(random)).Append(Decorate(random, NoiseOrRead(random)));
        }

        if (random.Next(3) == 0)
        {
            builder.Append(';');
        }

        return builder.ToString();
    }

    private static string NoiseOrRead(Random random) => random.Next(2) == 0 ? NoiseReads[random.Next(NoiseReads.Length)] : Reads[random.Next(Reads.Length)];

    /// <summary>Rebuilds a template with random separators between its tokens and random case for its bare words.</summary>
    private static string Decorate(Random random, string template)
    {
        var tokens = template.Split(' ').Select(token => token.Replace('·', ' ')).ToArray();
        var builder = new StringBuilder();
        if (random.Next(4) == 0)
        {
            builder.Append(Separator(random));
        }

        for (var i = 0; i < tokens.Length; i++)
        {
            if (i > 0)
            {
                builder.Append(Separator(random));
            }

            builder.Append(IsBareWord(tokens[i]) ? RandomCase(random, tokens[i]) : tokens[i]);
        }

        if (random.Next(4) == 0)
        {
            builder.Append(Separator(random));
        }

        return builder.ToString();
    }

    private static bool IsBareWord(string token) =>
        token.Length > 0 && (char.IsAsciiLetter(token[0]) || token[0] == '_') && token.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');

    private static string RandomCase(Random random, string word) => random.Next(3) switch
    {
        0 => word.ToUpperInvariant(),
        1 => word.ToLowerInvariant(),
        _ => string.Create(word.Length, (word, random.Next()), static (span, state) =>
        {
            var bits = state.Item2;
            for (var i = 0; i < span.Length; i++)
            {
                var c = state.word[i];
                span[i] = ((bits >> (i % 31)) & 1) == 0 ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c);
            }
        }),
    };

    /// <summary>Something PostgreSQL reads as a token separator: whitespace, a line comment, a (nested) block comment, or a mix.</summary>
    private static string Separator(Random random)
    {
        var builder = new StringBuilder();
        var parts = 1 + random.Next(3);
        for (var i = 0; i < parts; i++)
        {
            switch (random.Next(6))
            {
                case 0:
                case 1:
                    builder.Append(" \t\n\f"[random.Next(4)]);
                    break;
                case 2:
                    builder.Append(random.Next(2) == 0 ? "\r\n" : " ");
                    break;
                case 3:
                    builder.Append("--").Append(Word(random)).Append(random.Next(3) switch { 0 => "\n", 1 => "\r", _ => "\r\n" });
                    break;
                default:
                    builder.Append(BlockComment(random, depth: random.Next(3)));
                    break;
            }
        }

        return builder.ToString();
    }

    private static string BlockComment(Random random, int depth)
    {
        var builder = new StringBuilder("/*");
        builder.Append(' ').Append(Word(random)).Append(' ');
        if (depth > 0)
        {
            builder.Append(BlockComment(random, depth - 1)).Append(' ').Append(Word(random));
        }

        return builder.Append(" */").ToString();
    }

    private static string Word(Random random) => CommentWords[random.Next(CommentWords.Length)];
}

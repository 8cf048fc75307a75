using System.Runtime.Intrinsics;
using System.Text;
using EfReplicaInterceptor.Benchmarks.Classification;

namespace EfReplicaInterceptor.Tests.Classification;

/// <summary>
/// The vectorised screen may only ever accept what the full analysis classifies as a plain read. Checked three ways: on every
/// corpus statement and every command text EF Core generated, on hand-written texts aimed at each of its rules (and at the
/// 32-character block edges), and on random texts glued from EF-like SQL and the pieces the screen has to refuse. In all of them
/// <c>Classify</c> (screen first) must equal the analysis alone; and the screen must actually accept EF's ordinary reads, or
/// it would be a slower classifier rather than a faster one.
/// </summary>
public sealed class SqlReadScreenTests
{
    private const int CasesPerSeed = 40_000;

    private static readonly SqlClassifier Classifier = new(SqlCorpus.WriteFunctions);

    [Test]
    public void Screen_runs_on_the_vector_width_this_pass_is_for()
    {
        // build/test.sh runs these tests a second time with AVX2 switched off (DOTNET_EnableAVX2=0), so that the 128-bit path
        // (ARM64, older x64) is proven too; this makes sure that pass really took it.
        var expect128 = Environment.GetEnvironmentVariable("EFREPLICA_EXPECT_VECTOR128") == "1";
        TestContext.Out.WriteLine($"Vector256 accelerated: {Vector256.IsHardwareAccelerated}, Vector128 accelerated: {Vector128.IsHardwareAccelerated}.");
        if (expect128)
        {
            Assert.That(Vector256.IsHardwareAccelerated, Is.False, "this pass must run the screen's 128-bit path");
        }
    }

    [Test]
    public void Screen_agrees_with_the_analysis_on_the_corpus_and_accepts_efs_reads()
    {
        var texts = SqlCorpus.Entries.Select(e => e.Sql).Concat(EfGeneratedSql.Cases.Select(c => c.Sql)).ToList();
        foreach (var text in texts)
        {
            AssertAgrees(text);
        }

        var efReads = EfGeneratedSql.Cases.Where(c => c.Expected.IsReplicaSafe).Select(c => c.Sql).ToList();
        var accepted = efReads.Count(Classifier.ScreenAccepts);
        var corpusAccepted = SqlCorpus.Entries.Count(e => Classifier.ScreenAccepts(e.Sql));
        TestContext.Out.WriteLine(
            $"{texts.Count} texts agree; the screen accepts {accepted} of {efReads.Count} EF-generated reads and {corpusAccepted} of " +
            $"{SqlCorpus.Entries.Count(e => e.Expected.IsReplicaSafe)} corpus reads (the rest go through the full analysis).");

        // EF's reads that the screen declines: tagged with a block comment, using a dollar, a semicolon, a comment or a
        // deciding word, ... A few are expected; most must pass, or the fast path is not the common one.
        Assert.That(accepted, Is.GreaterThanOrEqualTo(efReads.Count * 8 / 10));
    }

    [TestCase("SELECT b.\"Id\", b.\"IsDeleted\", b.\"UpdatedAt\", b.\"Information\" FROM \"Blogs\" AS b WHERE b.\"Name\" = 'for you'", true)]
    [TestCase("-- tag: list\n-- second line\n\nSELECT b.\"Id\" FROM \"Blogs\" AS b", true)]
    [TestCase("SELECT count(*)::int, coalesce(max(p.\"Views\"), 0) FROM \"Posts\" AS p WHERE p.\"Title\" <> ''", true)]
    [TestCase("SELECT 'it''s', \"a\", 'x\"y', \"it's\" FROM t", true)]
    [TestCase("SELECT b.\"Id\" FROM \"Blogs\" AS b WHERE (b.\"Flags\" & @p) = @p AND b.\"Rating\" - 1 > 2 / 3", true)]
    [TestCase("SELECT é, 日本, ȷ FROM t", true)]
    [TestCase("select\tx\r\nfrom\vt\f", true)]
    [TestCase("SELECT", true)]
    [TestCase("SELECT x FROM t FOR UPDATE", false)]
    [TestCase("SELECT x FROM t for\nshare", false)]
    [TestCase("SELECT 1into t", false)]
    [TestCase("SELECT 1.5e3into t", false)]
    [TestCase("SELECT x INTO t FROM y", false)]
    [TestCase("SELECT \"Update\" FROM t", true)]
    [TestCase("SELECT t.update FROM t", true)]
    [TestCase("SELECT 1 AS into", true)]
    [TestCase("SELECT nextval('s')", false)]
    [TestCase("SELECT nextval   \n ('s')", false)]
    [TestCase("SELECT pg_catalog.nextval('s')", false)]
    [TestCase("SELECT \"nextval\"('s')", false)]
    [TestCase("SELECT \"NextVal\"('s')", false)]
    [TestCase("SELECT \"next\"\"val\"('s')", true)]
    [TestCase("SELECT 1nextval('s')", false)]
    [TestCase("SELECT 1.e1nextval('s')", false)]
    [TestCase("SELECT 1.E1pg_advisory_lock(1)", false)]
    [TestCase("SELECT 1.e+1nextval('s')", false)]
    [TestCase("SELECT b0.e1nextval FROM t AS b0", true)]
    [TestCase("SELECT x1nextval('s')", true)]
    [TestCase("SELECT pg_advisory_xact_lock(1)", false)]
    [TestCase("SELECT audit.log_access('x')", false)]
    [TestCase("SELECT o.touch_order FROM orders AS o", false)]
    [TestCase("SELECT o.\"TOUCH_ORDER\" FROM orders AS o", false)]
    [TestCase("SELECT o.touch_orders FROM orders AS o", true)]
    [TestCase("SELECT nextval/**/('s')", false)]
    [TestCase("SELECT 1 -- FOR UPDATE\n", true)]
    [TestCase("SELECT 1 /* */", true)]
    [TestCase("SELECT 1; DELETE FROM t", false)]
    [TestCase("SELECT 1;", true)]
    [TestCase("SELECT $1", true)]
    [TestCase("SELECT $$x$$", true)]
    [TestCase("SELECT a $into", false)]
    [TestCase("SELECT E'\\''", true)]
    [TestCase("SELECT E'\\'; DELETE FROM t; --'", true)]
    [TestCase("SELECT U&\"x\"", false)]
    [TestCase("SELECT U&'x'", true)]
    [TestCase("SELECT xu&\"y\"", true)]
    [TestCase("SELECT \"\" FROM t", false)]
    [TestCase("SELECT \"a\"\"b\" FROM t", true)]
    [TestCase("SELECT 'unterminated", false)]
    [TestCase("SELECT \"unterminated", false)]
    [TestCase("SELECT '\"' , \"'\"", true)]
    [TestCase("SELECT '\"' \"'", false)]
    [TestCase("SELECT 'a\0b'", false)]
    [TestCase("SELECT a\u0001b", false)]
    [TestCase("SELECT {x}", false)]
    [TestCase("SELECT b.\"Settings\" #>> '{Contact,Email}' FROM \"Blogs\" AS b", true)]
    [TestCase("SELECT p.\"Id\" FROM \"Posts\" AS p WHERE p.\"Title\" LIKE '50\\%%' ESCAPE '\\'", true)]
    [TestCase("SELECT E'\\n', e'{'", true)]
    [TestCase("SELECT E'\\'', nextval('s') --'", false)]
    [TestCase("SELECT xE'\\' , nextval('s')", false)]
    [TestCase("SELECT xE'\\' , 'a'", true)]
    [TestCase("SELECT 1e'\\'' , 'a'", true)]
    [TestCase("SELECT 1e5e'\\'' , 'a'", true)]
    [TestCase("SELECT b1e'\\' , 'a'", true)]
    [TestCase("SELECT 'a'E'\\'' , '{'", true)]
    [TestCase("SELECT E'\\\\' , '{'", true)]
    [TestCase("SELECT E'\\\\'' , '{'", false)]
    [TestCase("SELECT E'\\", false)]
    [TestCase("SELECT E'\\'", false)]
    [TestCase("SELECT \"a\\b\", \"{\"", true)]
    [TestCase("SELECT 'a' \\ 'b'", false)]
    [TestCase("SELECT 'a' } 'b'", false)]
    [TestCase("SELECT a\u007Fb", false)]
    [TestCase("SELECT \u0122x\u0122, \u0127, \u0128, \u0124 FROM t", true)]
    [TestCase("SELECT ınsert, \u212Aey, ſhare FROM t", true)]
    [TestCase("SELECTED FROM t", false)]
    [TestCase("-- only a comment", false)]
    [TestCase("-- tag\0\nSELECT 1", false)]
    [TestCase("/* tag */ SELECT 1", true)]
    [TestCase("(SELECT 1)", true)]
    [TestCase("WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d", false)]
    public void Screen_agrees_with_the_analysis_at_its_edges(string text, bool isRead)
    {
        AssertAgrees(text);
        Assert.That(Classifier.Classify(text).IsReplicaSafe, Is.EqualTo(isRead), text);
    }

    [Test]
    public void Screen_accepts_the_reads_it_is_for()
    {
        // The fast path is only worth having if EF's ordinary reads take it, also across 32-character blocks.
        string[] reads =
        [
            "SELECT b.\"Id\", b.\"Name\" FROM \"Blogs\" AS b WHERE b.\"Id\" = @p LIMIT 1",
            "-- tag\n\nSELECT count(*)::int FROM \"Posts\" AS p",
            "SELECT b.\"Settings\" #>> '{Contact,Email}' FROM \"Blogs\" AS b",
            "SELECT p.\"Id\" FROM \"Posts\" AS p WHERE p.\"Title\" LIKE '50\\%%' ESCAPE '\\'",
            "SELECT p.\"Id\" FROM \"Posts\" AS p WHERE length(btrim(p.\"Title\", E' \\t\\n\\r'))::int > 4",
            "SELECT '" + string.Concat(Enumerable.Repeat("a \"quoted\" word, ", 8)) + "' AS s, b.\"Id\" FROM \"Blogs\" AS b",
            "SELECT \"" + string.Concat(Enumerable.Repeat("it's ", 10)) + "\" FROM t WHERE x <> '' AND y = 'O''Brien'",
        ];
        foreach (var text in reads.Append(ClassifierTexts.IncludeWhereOrderLimit).Append(ClassifierTexts.IncludeThenInclude))
        {
            Assert.That(Classifier.ScreenAccepts(text), Is.True, text);
            Assert.That(Classifier.ClassifyWithoutScreen(text), Is.EqualTo(SqlClassification.PlainRead), text);
        }

        Assert.That(Classifier.ScreenAccepts(ClassifierTexts.AuditEntriesByKind), Is.False, "the benchmark's declined text");
        Assert.That(Classifier.Classify(ClassifierTexts.AuditEntriesByKind), Is.EqualTo(SqlClassification.PlainRead));
    }

    [Test]
    public void Screen_agrees_on_every_keyword_and_listed_function_in_every_position()
    {
        // Ties the screen to the analyzer's vocabulary: if the analyzer learns a new deciding keyword or function, a text using
        // it where the screen looks (or does not) shows up here rather than in production.
        var words = Enum.GetNames<SqlKeyword>().Where(n => n != nameof(SqlKeyword.None)).Select(n => n.ToLowerInvariant())
            .Concat(SqlClassifier.BuiltInWriteFunctions).Concat(SqlClassifier.BuiltInWriteFunctionPrefixes.Select(p => p + "x"))
            .Concat(["touch_order", "log_access", "order_touch"]);
        string[] templates =
        [
            "SELECT a {0} b", "SELECT a FOR {0} b", "SELECT a FOR NO {0}", "SELECT {0}", "SELECT {0}(1)", "SELECT {0} (1)", "SELECT \"{0}\"(1)",
            "SELECT s.{0}(1)", "SELECT t.{0} FROM t", "SELECT t.\"{0}\" FROM t", "SELECT 1{0}(1)", "SELECT 1.e1{0}(1)", "SELECT 1 AS {0}",
            "-- {0}\nSELECT 1", "SELECT '{0}'", "SELECT \"{0}\"", "SELECT x{0}(1)", "SELECT {0}x(1)", "SELECT @{0}",
        ];
        var checkedTexts = 0;
        foreach (var word in words)
        {
            foreach (var template in templates)
            {
                foreach (var form in new[] { word, word.ToUpperInvariant() })
                {
                    AssertAgrees(string.Format(System.Globalization.CultureInfo.InvariantCulture, template, form));
                    checkedTexts++;
                }
            }
        }

        TestContext.Out.WriteLine($"{checkedTexts} texts agree.");
    }

    [Test]
    public void Screen_agrees_at_every_block_edge()
    {
        // Each risky piece at every offset across two 32-character blocks after the SELECT.
        string[] pieces =
        [
            "\"\"", "\"a\"\"b\"", "''", "'a''b'", "'\"'", "\"'\"", "--", "/*", "&\"", "U&\"x\"", "nextval(", "\"nextval\"(", "1into", "for update",
            "touch_order", "$", ";", "\\", "'\\'", "E'\\''", "'{a}'", "\"{\"", "}", "\u0001", "'open", "\"open", "(", "x-1", "a/b", "é\"", "\"é\"",
        ];
        var checkedTexts = 0;
        foreach (var piece in pieces)
        {
            for (var pad = 0; pad < 70; pad++)
            {
                var text = "SELECT " + new string('a', pad) + " " + piece + " FROM \"t\"";
                AssertAgrees(text);
                AssertAgrees("SELECT \"" + new string('b', pad) + "\" , " + piece);
                checkedTexts += 2;
            }
        }

        TestContext.Out.WriteLine($"{checkedTexts} texts agree.");
    }

    [TestCaseSource(typeof(SqlClassifierPropertyTests), nameof(SqlClassifierPropertyTests.Seeds))]
    public void Screen_agrees_with_the_analysis_on_random_selects(int seed)
    {
        // EF-like column lists and clauses, with the pieces each rule of the screen is about dropped in at random places:
        // deciding words (whole, glued to digits, dots, quotes, in other scripts' look-alikes), function names before a
        // parenthesis, quotes of both kinds (doubled, empty, unterminated, nested in each other), comment openers, refused
        // characters, and characters above U+00FF whose low byte is a quote or a parenthesis.
        string[] fragments =
        [
            "b.\"Id\"", "b.\"Name\"", "b0.\"CreatedOn\"", ", ", " ", "\n", "\t", "FROM \"Blogs\" AS b", "LEFT JOIN \"Posts\" AS p ON b.\"Id\" = p.\"BlogId\"",
            "WHERE", "AND", "ORDER BY", "LIMIT @p", "@p0", "= ", "> ", "(", ")", "'Hot%'", "'it''s'", "''", "'", "\"", "\"\"", "\"a\"\"b\"",
            "'\"'", "\"'\"", "count(*)", "coalesce(", "nextval(", "nextval (", "\"nextval\"(", "pg_catalog.setval(", "1nextval(", "x1nextval(", "1.e1nextval(", "1.", "e1",
            "pg_advisory_lock(", "touch_order", "o.touch_order", "order_touch(", "insert", "INSERT", "Update", "\"Update\"", "\"UpdatedAt\"",
            "\"IsDeleted\"", "delete", "merge", "into", "1into", "9for", ".for", "FOR", "for update", "FOR SHARE", "FOR NO KEY UPDATE", "share",
            "key", "as", "AS into", "$1", "$", "$$", ";", "--", "/*", "*/", "-", "/", "&", "&\"", "U&\"x\"", "U&'x'", "E'x'", "E'\\''",
            "\\", "{", "}", "'{a,b}'", "'\\'", "E'\\n'", "e'\\''", "x'\\'", "xe'\\'", "1e'\\'", "9e5e'\\'", "E'\\\\'", "E'\\", "'50\\%%'", "btrim(x, E' \\t\\n\\r')", "\u0000", "\u0001", "\u007F", "\u0122", "\u0127", "\u0128", "\u0124", "ı", "ſ", "\u212A", "é", "\uD800",
            "::int", "[1]", "ILIKE", "EXISTS (", "SELECT", "b", "1", "1.5e", ".5",
        ];
        var random = new Random(seed);
        var builder = new StringBuilder();
        var accepted = 0;
        for (var i = 0; i < CasesPerSeed; i++)
        {
            builder.Clear();
            if (random.Next(5) == 0)
            {
                builder.Append("-- tag ").Append(fragments[random.Next(fragments.Length)]).Append("\n\n");
            }

            builder.Append(random.Next(3) == 0 ? "select " : "SELECT ");
            var length = random.Next(1, 40);
            for (var n = 0; n < length; n++)
            {
                // Mostly harmless EF-like pieces, so that many texts are reads the screen has to judge to the end.
                var index = random.Next(4) == 0 ? random.Next(fragments.Length) : random.Next(13);
                builder.Append(fragments[index]);
            }

            var text = builder.ToString();
            AssertAgrees(text, $"Seed {seed}, case {i}");
            accepted += Classifier.ScreenAccepts(text) ? 1 : 0;
        }

        TestContext.Out.WriteLine($"Seed {seed}: {CasesPerSeed} random texts agree; the screen accepted {accepted}.");
        Assert.That(accepted, Is.GreaterThan(CasesPerSeed / 20), "too few texts reached the end of the screen to test it");
    }

    private static void AssertAgrees(string text, string? context = null)
    {
        var full = Classifier.ClassifyWithoutScreen(text);
        if (Classifier.ScreenAccepts(text) && full != SqlClassification.PlainRead)
        {
            Assert.Fail($"{context}: the screen accepted a text the analysis classifies as {full.Target}/{full.Reason}:\n{text}");
        }

        Assert.That(Classifier.Classify(text), Is.EqualTo(full), text);
    }
}

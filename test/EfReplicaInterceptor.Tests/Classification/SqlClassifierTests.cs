using System.Text;

namespace EfReplicaInterceptor.Tests.Classification;

public sealed class SqlClassifierTests
{
    private static readonly SqlClassification Read = SqlClassification.PlainRead;

    private static SqlClassification Primary(RoutingReason reason) => SqlClassification.NeedsPrimary(reason);

    [Test]
    public void Default_is_one_shared_instance_that_knows_only_builtin_functions()
    {
        Assert.Multiple(() =>
        {
            Assert.That(SqlClassifier.Default, Is.SameAs(SqlClassifier.Default));
            Assert.That(SqlClassifier.Default.Classify("SELECT nextval('s')"), Is.EqualTo(Primary(RoutingReason.WriteFunction)));
            Assert.That(SqlClassifier.Default.Classify("SELECT touch_order(1)"), Is.EqualTo(Read), "an application function nobody declared is invisible");
        });
    }

    [Test]
    public void Arguments_are_validated()
    {
        Assert.Multiple(() =>
        {
            Assert.That(() => SqlClassifier.Default.Classify(null!), Throws.ArgumentNullException);
            Assert.That(() => SqlClassifier.Default.ClassifyCached(null!), Throws.ArgumentNullException);
            Assert.That(() => new SqlClassifier(null!), Throws.ArgumentNullException);
            Assert.That(() => new SqlClassifier(["ok", " "]), Throws.ArgumentException);
            Assert.That(() => new SqlClassifier(["schema."]), Throws.ArgumentException);
            Assert.That(() => new SqlClassifier(["\"unterminated"]), Throws.ArgumentException);
        });
    }

    [TestCase("audit.log_access", "SELECT audit.log_access('x')")]
    [TestCase("audit.log_access", "SELECT log_access('x')")]
    [TestCase("audit.log_access", "SELECT other_schema.LOG_ACCESS('x')")]
    [TestCase("audit.log_access", "SELECT \"audit\".\"log_access\"('x')")]
    [TestCase("log_access", "SELECT audit.log_access('x')")]
    [TestCase("\"Audit\".\"LogAccess\"", "SELECT \"Audit\".\"LogAccess\"('x')")]
    [TestCase("\"Audit\".\"LogAccess\"", "SELECT audit.logaccess('x')")]
    [TestCase("  Public.Touch  ", "SELECT * FROM orders o WHERE touch ( o.id ) > 0")]
    [TestCase("\"we\"\"ird.name\"", "SELECT \"we\"\"ird.name\"(1)")]
    [TestCase("touch", "SELECT o.touch FROM orders o")]
    [TestCase("touch", "SELECT o.\"touch\" FROM orders o")]
    public void Application_write_functions_match_by_bare_name_in_any_case_and_schema(string configured, string sql)
    {
        Assert.That(new SqlClassifier([configured]).Classify(sql), Is.EqualTo(Primary(RoutingReason.WriteFunction)));
    }

    [TestCase("SELECT 'log_access(1)'")]
    [TestCase("SELECT 1 /* log_access(1) */")]
    [TestCase("SELECT \"log_access\" FROM t")]
    [TestCase("SELECT log_access_count(1)")]
    [TestCase("SELECT my_log_access(1)")]
    public void Application_write_functions_do_not_match_strings_comments_columns_or_other_names(string sql)
    {
        Assert.That(new SqlClassifier(["audit.log_access"]).Classify(sql), Is.EqualTo(Read));
    }

    [Test]
    public void Builtin_functions_are_not_matched_in_attribute_notation()
    {
        // nextval(regclass) cannot be called as row.nextval, so a column of that name stays a read.
        Assert.That(SqlClassifier.Default.Classify("SELECT s.nextval, s.setval FROM stats s"), Is.EqualTo(Read));
    }

    [Test]
    public void Identifiers_are_compared_as_PostgreSQL_truncates_them_to_63_characters()
    {
        var name = new string('f', 63);
        var classifier = new SqlClassifier([name]);
        Assert.Multiple(() =>
        {
            Assert.That(classifier.Classify($"SELECT {name}xyz(1)"), Is.EqualTo(Primary(RoutingReason.WriteFunction)));
            Assert.That(classifier.Classify($"SELECT {name[..62]}(1)"), Is.EqualTo(Read));
        });
    }

    [Test]
    public void Identifiers_are_compared_as_PostgreSQL_truncates_them_to_63_bytes_of_utf8()
    {
        // Found by review: 62 ASCII characters and an é are 64 bytes, so PostgreSQL calls the 62-character function.
        var name = "f" + new string('a', 61);
        var classifier = new SqlClassifier([name]);

        // A configured name over 63 bytes is the function PostgreSQL created: its first 31 é (62 bytes).
        var accented = new SqlClassifier(["\"" + new string('é', 40) + "\""]);
        Assert.Multiple(() =>
        {
            Assert.That(classifier.Classify($"SELECT {name}ébbbbb(1)"), Is.EqualTo(Primary(RoutingReason.WriteFunction)));
            Assert.That(classifier.Classify($"SELECT x.{name}é FROM t AS x"), Is.EqualTo(Primary(RoutingReason.WriteFunction)));
            Assert.That(classifier.Classify($"SELECT {name[..61]}é(1)"), Is.EqualTo(Read));
            Assert.That(accented.Classify($"SELECT \"{new string('é', 31)}\"(1)"), Is.EqualTo(Primary(RoutingReason.WriteFunction)));
            Assert.That(accented.Classify($"SELECT \"{new string('é', 40)}\"(1)"), Is.EqualTo(Primary(RoutingReason.WriteFunction)));
            Assert.That(accented.Classify($"SELECT \"{new string('é', 30)}\"(1)"), Is.EqualTo(Read));
        });
    }

    [TestCase("pg_advisory_lock(1)")]
    [TestCase("pg_try_advisory_xact_lock_shared(1)")]
    [TestCase("dblink_exec('x', 'y')")]
    [TestCase("dblink('x', 'select 1')")]
    [TestCase("pg_logical_slot_get_changes('s', null, null)")]
    [TestCase("pg_replication_origin_create('o')")]
    [TestCase("pg_stat_reset_shared('bgwriter')")]
    [TestCase("PG_CATALOG.PG_ADVISORY_UNLOCK_ALL()")]
    public void Builtin_function_families_are_matched_by_prefix(string call)
    {
        Assert.That(SqlClassifier.Default.Classify("SELECT " + call), Is.EqualTo(Primary(RoutingReason.WriteFunction)));
    }

    [TestCase("SELECT * FROM orders --comment\rFOR UPDATE", RoutingReason.LockingRead)]
    [TestCase("SELECT 1 --comment\r; DELETE FROM t", RoutingReason.WriteStatement)]
    [TestCase("SELECT 1 --comment\r\nINTO t", RoutingReason.WriteStatement)]
    [TestCase("SELECT\f1\v;\fDELETE FROM t", RoutingReason.WriteStatement)]
    [TestCase("SET x = 1; DELETE FROM t", RoutingReason.SessionStatement)]
    [TestCase("SELECT * FROM t FOR UPDATE; DELETE FROM t", RoutingReason.LockingRead)]
    [TestCase("SELECT 1; SELECT nextval('s'); DELETE FROM t", RoutingReason.WriteFunction)]
    public void Line_endings_and_batches_are_read_like_PostgreSQL_and_the_first_primary_statement_gives_the_reason(string sql, RoutingReason reason)
    {
        Assert.That(SqlClassifier.Default.Classify(sql), Is.EqualTo(Primary(reason)));
    }

    [TestCase("")]
    [TestCase(" \t\r\n\f")]
    [TestCase("-- comment only")]
    [TestCase("/* comment */ ; ; /* only */")]
    public void Text_without_a_statement_is_unrecognized(string sql)
    {
        Assert.That(SqlClassifier.Default.Classify(sql), Is.EqualTo(Primary(RoutingReason.Unrecognized)));
    }

    [TestCase("SELECT 1\0")]
    [TestCase("SELECT '\0'")]
    [TestCase("SELECT E'\\\0'")]
    [TestCase("SELECT \"a\0\" FROM t")]
    [TestCase("SELECT $$\0$$")]
    [TestCase("SELECT 1 /* \0 */")]
    [TestCase("SELECT 1 -- \0")]
    [TestCase("SELECT 1 -- \n\0")]
    public void A_NUL_character_anywhere_is_unrecognized(string sql)
    {
        Assert.That(SqlClassifier.Default.Classify(sql), Is.EqualTo(Primary(RoutingReason.Unrecognized)));
    }

    [TestCase("SELECT '")]
    [TestCase("SELECT 'a''")]
    [TestCase("SELECT E'\\")]
    [TestCase("SELECT E'\\'")]
    [TestCase("SELECT U&'")]
    [TestCase("SELECT \"")]
    [TestCase("SELECT \"\"")]
    [TestCase("SELECT $")]
    [TestCase("SELECT $a")]
    [TestCase("SELECT $a$ $b$")]
    [TestCase("SELECT /*")]
    [TestCase("SELECT /* /* */")]
    [TestCase("SELECT /* *")]
    [TestCase("SELECT \\")]
    [TestCase("SELECT \u0001")]
    [TestCase("EXPLAIN (ANALYZE")]
    [TestCase("COPY (SELECT 1")]
    [TestCase("COPY t (a, b")]
    [TestCase("COPY t")]
    [TestCase("(")]
    public void Unterminated_or_invalid_text_is_unrecognized(string sql)
    {
        Assert.That(SqlClassifier.Default.Classify(sql), Is.EqualTo(Primary(RoutingReason.Unrecognized)));
    }

    [TestCase("SELECT 1 AS \ud83d\ude00, 'x' AS \u00fcber, \u03a9 FROM t")]
    [TestCase("SELECT \ud800 FROM t")]
    [TestCase("SELECT 1 AS a\u00a0b")]
    public void Non_ASCII_characters_are_identifier_characters(string sql)
    {
        Assert.That(SqlClassifier.Default.Classify(sql), Is.EqualTo(Read));
    }

    [Test]
    public void Huge_texts_are_classified_in_one_pass()
    {
        var reads = new StringBuilder("SELECT 1");
        while (reads.Length < 4_000_000)
        {
            reads.Append(" UNION ALL SELECT 'for update', \"delete\" /* insert */ FROM t -- nextval(\n");
        }

        var read = reads.ToString();
        Assert.Multiple(() =>
        {
            Assert.That(SqlClassifier.Default.Classify(read), Is.EqualTo(Read));
            Assert.That(SqlClassifier.Default.Classify(read + "; DELETE FROM t"), Is.EqualTo(Primary(RoutingReason.WriteStatement)));
            Assert.That(SqlClassifier.Default.ClassifyCached(read), Is.EqualTo(Read));
        });
    }

    [Test]
    public void Deep_nesting_does_not_recurse()
    {
        var depth = 1_000_000;
        var parentheses = new string('(', depth) + "SELECT 1" + new string(')', depth);
        var comments = "SELECT 1 " + string.Concat(Enumerable.Repeat("/*", depth)) + string.Concat(Enumerable.Repeat("*/", depth));
        Assert.Multiple(() =>
        {
            Assert.That(SqlClassifier.Default.Classify(parentheses), Is.EqualTo(Read));
            Assert.That(SqlClassifier.Default.Classify(comments), Is.EqualTo(Read));
            Assert.That(SqlClassifier.Default.Classify(comments[..^2]), Is.EqualTo(Primary(RoutingReason.Unrecognized)));
        });
    }

    [Test]
    public void Cached_and_uncached_classification_agree_on_the_corpus()
    {
        var classifier = new SqlClassifier(SqlCorpus.WriteFunctions);
        foreach (var entry in SqlCorpus.Entries)
        {
            var expected = classifier.Classify(entry.Sql);
            Assert.That(classifier.ClassifyCached(entry.Sql), Is.EqualTo(expected), entry.Source);
            Assert.That(classifier.ClassifyCached(entry.Sql), Is.EqualTo(expected), entry.Source + " (cached)");
            Assert.That(classifier.ClassifyCached(new string(entry.Sql.AsSpan())), Is.EqualTo(expected), entry.Source + " (copy)");
        }
    }
}

namespace EfReplicaInterceptor.Tests.Classification;

public sealed class SqlKeywordsTests
{
    [TestCase("as", nameof(SqlKeyword.As))]
    [TestCase("NO", nameof(SqlKeyword.No))]
    [TestCase("For", nameof(SqlKeyword.For))]
    [TestCase("kEY", nameof(SqlKeyword.Key))]
    [TestCase("into", nameof(SqlKeyword.Into))]
    [TestCase("MERGE", nameof(SqlKeyword.Merge))]
    [TestCase("share", nameof(SqlKeyword.Share))]
    [TestCase("Delete", nameof(SqlKeyword.Delete))]
    [TestCase("INSERT", nameof(SqlKeyword.Insert))]
    [TestCase("upDATE", nameof(SqlKeyword.Update))]
    public void The_prefilter_never_hides_a_keyword_of_a_read(string word, string keywordName)
    {
        var keyword = Enum.Parse<SqlKeyword>(keywordName);
        Assert.Multiple(() =>
        {
            Assert.That(SqlKeywords.LookupInRead(word), Is.EqualTo(keyword));
            Assert.That(SqlKeywords.MayBeReadKeyword(word), Is.True);
        });
    }

    [Test]
    public void Every_word_the_read_lookup_knows_passes_the_prefilter()
    {
        // All words of 2 to 6 letters over the letters of the keywords, in both cases.
        const string letters = "adefgiklmnoprstuyADEFGIKLMNOPRSTUY";
        var random = new Random(20_250_521);
        for (var i = 0; i < 200_000; i++)
        {
            var word = new string(Enumerable.Range(0, random.Next(2, 7)).Select(_ => letters[random.Next(letters.Length)]).ToArray());
            if (SqlKeywords.LookupInRead(word) != SqlKeyword.None)
            {
                Assert.That(SqlKeywords.MayBeReadKeyword(word), Is.True, word);
            }
        }

        Assert.Multiple(() =>
        {
            Assert.That(SqlKeywords.MayBeReadKeyword("SELECT"), Is.False);
            Assert.That(SqlKeywords.MayBeReadKeyword("from"), Is.False);
            Assert.That(SqlKeywords.MayBeReadKeyword("b0"), Is.False);
            Assert.That(SqlKeywords.MayBeReadKeyword("_x"), Is.False);
            Assert.That(SqlKeywords.MayBeReadKeyword("\u00e9t\u00e9"), Is.False);
        });
    }

    [TestCase("select", nameof(SqlKeyword.Select))]
    [TestCase("ANALYSE", nameof(SqlKeyword.Analyze))]
    [TestCase("analyze", nameof(SqlKeyword.Analyze))]
    [TestCase("Checkpoint", nameof(SqlKeyword.Checkpoint))]
    [TestCase("deallocate", nameof(SqlKeyword.Deallocate))]
    [TestCase("savepoint", nameof(SqlKeyword.Savepoint))]
    [TestCase("selects", nameof(SqlKeyword.None))]
    [TestCase("s", nameof(SqlKeyword.None))]
    [TestCase("checkpoints", nameof(SqlKeyword.None))]
    [TestCase("\u0131nsert", nameof(SqlKeyword.None))]
    public void Statement_keywords_are_matched_on_ASCII_letters_in_any_case(string word, string keywordName)
    {
        var keyword = Enum.Parse<SqlKeyword>(keywordName);
        Assert.That(SqlKeywords.Lookup(word), Is.EqualTo(keyword));
    }
}

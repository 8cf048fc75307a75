using EfReplicaInterceptor.Routing;

namespace EfReplicaInterceptor.Tests.Routing;

public sealed class QueryTagsTests
{
    [TestCase("-- EfReplica:UsePrimary\n\nSELECT 1", true, null)]
    [TestCase("-- other tag\n-- EfReplica:UsePrimary\r\n\r\nSELECT 1", true, null)]
    [TestCase("-- EfReplica:MaxStaleness=1500ms\n\nSELECT 1", false, 1500)]
    [TestCase("-- EfReplica:MaxStaleness=900ms\n-- EfReplica:MaxStaleness=100ms\n\nSELECT 1", false, 100)]
    [TestCase("SELECT 1 -- EfReplica:UsePrimary", false, null)]
    [TestCase("SELECT '-- EfReplica:UsePrimary'", false, null)]
    [TestCase("-- EfReplica:UsePrimaryX\n\nSELECT 1", false, null)]
    [TestCase("-- EfReplica:MaxStaleness=abcms\n\nSELECT 1", false, null)]
    [TestCase("-- EfReplica:MaxStaleness=-5ms\n\nSELECT 1", false, null)]
    [TestCase("", false, null)]
    public void Reads_only_the_leading_tag_lines(string commandText, bool usePrimary, int? maxStalenessMs)
    {
        var tags = QueryTags.Read(commandText);

        Assert.That(tags.UsePrimary, Is.EqualTo(usePrimary));
        Assert.That(tags.MaxStaleness, Is.EqualTo(maxStalenessMs is { } ms ? TimeSpan.FromMilliseconds(ms) : (TimeSpan?)null));
    }

    [Test]
    public void The_staleness_tag_round_trips_in_whole_milliseconds_rounded_up()
        => Assert.That(QueryTags.Read($"-- {QueryTags.MaxStaleness(TimeSpan.FromTicks(15_000_001))}\n\nSELECT 1").MaxStaleness, Is.EqualTo(TimeSpan.FromMilliseconds(1501)));
}

using EfReplicaInterceptor.Consistency;

namespace EfReplicaInterceptor.Tests.Consistency;

public sealed class ConsistencyTokenTests
{
    [TestCase(7710595945484799813UL, 0x1501260UL)]
    [TestCase(1UL, 1UL)]
    [TestCase(ulong.MaxValue, ulong.MaxValue)]
    public void Round_trips(ulong systemIdentifier, ulong lsn)
    {
        var token = ConsistencyToken.Format(systemIdentifier, lsn);

        Assert.That(token, Has.Length.EqualTo(27).And.StartsWith("efr1."));
        Assert.That(token, Does.Match("^efr1\\.[A-Za-z0-9_-]{22}$"), "safe in a cookie, a header or a URL");
        Assert.That(ConsistencyToken.TryParse(token, out var system, out var position), Is.True);
        Assert.That((system, position), Is.EqualTo((systemIdentifier, lsn)));
    }

    [TestCase(null)]
    [TestCase("")]
    [TestCase("efr1.")]
    [TestCase("efr2.AAAAAAAAAAAAAAAAAAAAAA")] // the second form with one part: not a form this library writes
    [TestCase("efr1.AAAAAAAAAAAAAAAAAAAA")]
    [TestCase("efr1.AAAAAAAAAAAAAAAAAAAAAAAA")]
    [TestCase("efr1.!!!!!!!!!!!!!!!!!!!!!!")]
    [TestCase("efr1.AAAAAAAAAAAAAAAAAAAAAA")] // position zero means nothing
    [TestCase("Host=db;Password=secret")]
    public void Rejects_anything_else(string? token)
        => Assert.That(ConsistencyToken.TryParse(token, out _, out _), Is.False);

    [Test]
    public void Several_clusters_round_trip_in_the_second_form_and_one_cluster_keeps_the_first()
    {
        TokenPosition[] two = [new(7710595945484799813UL, 0x1501260UL), new(42UL, ulong.MaxValue)];

        var token = ConsistencyToken.Format(two);
        var single = ConsistencyToken.Format([two[0]]);

        Assert.That(token, Does.Match("^efr2\\.[A-Za-z0-9_-]{43}$"), "safe in a cookie, a header or a URL");
        Assert.That(ConsistencyToken.TryParse(token, out TokenPosition[] parsed), Is.True);
        Assert.That(parsed, Is.EqualTo(two));
        Assert.That(ConsistencyToken.TryParse(token, out _, out _), Is.False, "the one-cluster reader does not take a two-cluster token");
        Assert.That(single, Is.EqualTo(ConsistencyToken.Format(two[0].SystemIdentifier, two[0].Lsn)), "one cluster: the first form, as tokens already issued");
        Assert.That(ConsistencyToken.TryParse(single, out TokenPosition[] one), Is.True);
        Assert.That(one, Is.EqualTo(new[] { two[0] }));
    }

    [Test]
    public void The_second_form_holds_up_to_eight_clusters_once_each()
    {
        var eight = Enumerable.Range(1, ConsistencyToken.MaxClusters).Select(i => new TokenPosition((ulong)i, (ulong)(i * 100))).ToArray();
        Assert.That(ConsistencyToken.TryParse(ConsistencyToken.Format(eight), out TokenPosition[] parsed), Is.True);
        Assert.That(parsed, Is.EqualTo(eight));
        Assert.That(ConsistencyToken.Format(eight), Has.Length.LessThan(200));

        Assert.Throws<ArgumentOutOfRangeException>(() => ConsistencyToken.Format([.. eight, new TokenPosition(99, 1)]));
        var twice = ConsistencyToken.Format([new TokenPosition(5, 1), new TokenPosition(5, 2)]);
        Assert.That(ConsistencyToken.TryParse(twice, out TokenPosition[] _), Is.False, "a cluster named twice");
        var zero = ConsistencyToken.Format([new TokenPosition(5, 1), new TokenPosition(6, 0)]);
        Assert.That(ConsistencyToken.TryParse(zero, out TokenPosition[] _), Is.False, "a zero position means nothing");
    }
}

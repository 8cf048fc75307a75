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
    [TestCase("efr2.AAAAAAAAAAAAAAAAAAAAAA")]
    [TestCase("efr1.AAAAAAAAAAAAAAAAAAAA")]
    [TestCase("efr1.AAAAAAAAAAAAAAAAAAAAAAAA")]
    [TestCase("efr1.!!!!!!!!!!!!!!!!!!!!!!")]
    [TestCase("efr1.AAAAAAAAAAAAAAAAAAAAAA")] // position zero means nothing
    [TestCase("Host=db;Password=secret")]
    public void Rejects_anything_else(string? token)
        => Assert.That(ConsistencyToken.TryParse(token, out _, out _), Is.False);
}

using EfReplicaInterceptor.Topology;

namespace EfReplicaInterceptor.Tests.Topology;

/// <summary>
/// What a WAL receiver's sender and a capture's server address are read as (<see cref="TcpAddress.Parse"/>): only an IP
/// address in its usual text and a port; anything else (a host name, a unix socket directory, an unusual spelling, a NULL)
/// is no address, so no standby is credited through it.
/// </summary>
public sealed class TcpAddressTests
{
    [TestCase("127.0.0.1", 5432, "127.0.0.1:5432")]
    [TestCase("10.0.0.5", 6000, "10.0.0.5:6000")]
    [TestCase("::1", 5432, "::1:5432")]
    [TestCase("::ffff:10.0.0.5", 5432, "10.0.0.5:5432")]
    public void An_IP_address_and_a_port_are_an_address(string host, int port, string expected)
        => Assert.That(TcpAddress.Parse(host, port)?.ToString(), Is.EqualTo(expected));

    [TestCase("/tmp/efreplica-pg/abc", 5432, TestName = "A unix socket directory is no address")]
    [TestCase("db-primary", 5432, TestName = "A host name is no address (each host may resolve it differently)")]
    [TestCase("localhost", 5432, TestName = "localhost is no address")]
    [TestCase("127.1", 5432, TestName = "An unusual spelling of an address is no address")]
    [TestCase(" 127.0.0.1", 5432, TestName = "An address with a space is no address")]
    [TestCase(null, 5432, TestName = "A NULL host is no address")]
    [TestCase("127.0.0.1", null, TestName = "A NULL port is no address")]
    [TestCase("127.0.0.1", 0, TestName = "Port 0 is no address")]
    public void Anything_else_is_no_address(string? host, int? port)
        => Assert.That(TcpAddress.Parse(host, port), Is.Null);

    [Test]
    public void The_same_address_and_port_are_equal_and_another_port_is_not()
    {
        Assert.That(TcpAddress.Parse("10.0.0.5", 5432), Is.EqualTo(TcpAddress.Parse("10.0.0.5", 5432)));
        Assert.That(TcpAddress.Parse("10.0.0.5", 5432), Is.Not.EqualTo(TcpAddress.Parse("10.0.0.5", 5433)));
        Assert.That(TcpAddress.Parse("::ffff:10.0.0.5", 5432), Is.EqualTo(TcpAddress.Parse("10.0.0.5", 5432)));
    }
}

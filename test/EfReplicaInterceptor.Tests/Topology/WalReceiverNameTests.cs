using EfReplicaInterceptor.Topology;

namespace EfReplicaInterceptor.Tests.Topology;

/// <summary>
/// The application name a standby's WAL receiver gives the primary, from its <c>pg_stat_wal_receiver.conninfo</c> and
/// <c>cluster_name</c>: the texts PostgreSQL 15 showed on the test servers, and every text that cannot be read exactly gives
/// no name.
/// </summary>
public sealed class WalReceiverNameTests
{
    // As PostgreSQL 15.18 shows them (pg_basebackup -R, then primary_conninfo with application_name and options set).
    private const string Plain = "user=postgres passfile=/var/lib/postgresql/.pgpass channel_binding=prefer dbname=replication host=127.0.0.1 port=55431 "
        + "fallback_application_name=s1 sslmode=prefer sslcompression=0 sslsni=1 ssl_min_protocol_version=TLSv1.2 gssencmode=prefer krbsrvname=postgres target_session_attrs=any";

    private const string Named = "user=postgres passfile=/var/lib/postgresql/.pgpass channel_binding=prefer dbname=replication host=127.0.0.1 port=55431 "
        + "application_name=my app fallback_application_name=walreceiver sslmode=prefer sslcompression=0 target_session_attrs=any";

    private const string WithOptions = "user=postgres dbname=replication host=127.0.0.1 port=55431 options=-c work_mem=64MB "
        + "application_name=my app fallback_application_name=walreceiver sslmode=prefer";

    // A Patroni 4 member (PostgreSQL 15.18): Patroni sets application_name to the member's name; cluster_name is the scope.
    private const string Patroni = "user=replicator passfile=/tmp/patroni/member3.pgpass channel_binding=prefer dbname=replication host=127.0.0.1 port=38595 "
        + "application_name=member3 fallback_application_name=efreplica sslmode=prefer sslcompression=0 sslsni=1 ssl_min_protocol_version=TLSv1.2 gssencmode=prefer krbsrvname=postgres target_session_attrs=any";

    private static readonly object?[][] Cases =
    [
        [Patroni, "efreplica", "member3"],
        [Plain, "s1", "s1"],
        [Named, "", "my app"],
        [Plain.Replace("fallback_application_name=s1", "fallback_application_name=walreceiver", StringComparison.Ordinal), "", "walreceiver"],
        [Plain.Replace(" sslmode=prefer sslcompression=0 sslsni=1 ssl_min_protocol_version=TLSv1.2 gssencmode=prefer krbsrvname=postgres target_session_attrs=any", string.Empty, StringComparison.Ordinal), "s1", "s1"],
        [null, "s1", null], // no pg_read_all_stats on the standby, or no WAL receiver
        [string.Empty, "s1", null],
        [Plain, "s2", null], // the fallback is not the cluster_name known: where its value ends cannot be told
        [Plain, "s", null], // "s" is a prefix of the value "s1", not the value
        [WithOptions, "", null], // options values hold "-c name=value" text
        ["user=postgres dbname=replication options=-c application_name=x fallback_application_name=walreceiver sslmode=prefer", "", null], // the primary shows "walreceiver", not "x"
        [Plain.Replace("port=55431", "port=55431 application_name=a application_name=b", StringComparison.Ordinal), "s1", null],
        [Plain.Replace("fallback_application_name=s1", "fallback_application_name=s1 fallback_application_name=s1", StringComparison.Ordinal), "s1", null],
        [Named.Replace("my app", new string('n', 64), StringComparison.Ordinal), "", null], // the server keeps 63 bytes
        [Named.Replace("my app", new string('n', 63), StringComparison.Ordinal), "", new string('n', 63)],
        [Named.Replace("my app", "caf\u00e9", StringComparison.Ordinal), "", null], // the server shows '?' for non-ASCII
    ];

    [TestCaseSource(nameof(Cases))]
    public void The_name_is_read_only_when_the_text_tells_it_exactly(string? connectionInfo, string clusterName, string? expected)
        => Assert.That(WalReceiverName.FromConnectionInfo(connectionInfo, clusterName), Is.EqualTo(expected));
}

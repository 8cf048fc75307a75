using System.Net;
using EfReplicaInterceptor.Topology;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace EfReplicaInterceptor.Tests.Topology;

/// <summary>
/// Patroni's <c>/cluster</c> document read into a topology, and the polling: each address tried in turn, a failing or hung
/// one passed over within the poll's deadline (a fake clock), the one that answered asked first next time, a poll at once
/// when the read path asks. The documents are recorded from Patroni 3.0; the HTTP handler only replays them.
/// </summary>
public sealed class PatroniTopologySourceTests
{
    private const string Template = "Host=db-a,db-b;Port=5432;Database=shop;Username=app;Password=pw;Target Session Attributes=primary;Timeout=3";

    /// <summary>Patroni 3.0.2's answer for a cluster of six members, one of each kind the source must tell apart.</summary>
    internal const string Recorded = """
        {"members":[
          {"name":"m1","role":"leader","state":"running","api_url":"http://127.0.0.1:8008/patroni","host":"127.0.0.1","port":5432,"timeline":1},
          {"name":"m2","role":"replica","state":"streaming","api_url":"http://127.0.0.1:8009/patroni","host":"127.0.0.1","port":5433,"timeline":1,"lag":0,"tags":{"noloadbalance":true}},
          {"name":"m3","role":"sync_standby","state":"streaming","api_url":"http://127.0.0.1:8010/patroni","host":"127.0.0.1","port":5434,"timeline":1,"lag":16},
          {"name":"m4","role":"replica","state":"starting","api_url":"http://127.0.0.1:8011/patroni","host":"127.0.0.1","port":5435,"timeline":1,"lag":"unknown"},
          {"name":"m5","role":"replica","state":"running","api_url":"http://127.0.0.1:8012/patroni","host":"127.0.0.1","port":5436,"timeline":1,"lag":"unknown"},
          {"name":"m6","role":"replica","state":"in archive recovery","api_url":"http://127.0.0.1:8013/patroni","host":"127.0.0.1","port":5437,"timeline":1}
        ],"scope":"demo"}
        """;

    private const string AfterSwitchover = """
        {"members":[
          {"name":"m1","role":"replica","state":"streaming","host":"127.0.0.1","port":5432,"timeline":2,"lag":0},
          {"name":"m3","role":"leader","state":"running","host":"127.0.0.1","port":5434,"timeline":2}
        ],"scope":"demo"}
        """;

    [Test]
    public void The_leader_is_the_primary_and_only_running_or_streaming_replicas_without_noloadbalance_take_reads()
    {
        var snapshot = PatroniTopologySource.Parse(Recorded, Template, "Patroni at http://127.0.0.1:8008");

        Assert.Multiple(() =>
        {
            Assert.That(snapshot.Leader?.Name, Is.EqualTo("m1"));
            Assert.That(snapshot.Members.Select(static m => (m.Name, m.Role, m.TakesReads, m.State)), Is.EqualTo(new[]
            {
                ("m1", MemberRole.Primary, false, "running"),
                ("m2", MemberRole.Replica, false, "streaming"), // noloadbalance
                ("m3", MemberRole.Replica, true, "streaming"),
                ("m4", MemberRole.Replica, false, "starting"),
                ("m5", MemberRole.Replica, true, "running"),
                ("m6", MemberRole.Replica, false, "in archive recovery"),
            }));
            Assert.That(snapshot.Readable.Select(static m => m.Name), Is.EqualTo(new[] { "m3", "m5" }));
            Assert.That(snapshot.Watched.Select(static m => m.Name), Is.EqualTo(new[] { "m1", "m3", "m5" }), "the running leader is watched, out of rotation while it is the primary");
            Assert.That(snapshot.Members.Select(static m => m.LagHintBytes), Is.EqualTo(new long?[] { null, 0, 16, null, null, null }), "a hint only; \"unknown\" is none");
        });
    }

    [Test]
    public void A_leader_that_does_not_run_is_not_watched_and_a_noloadbalance_tag_does_not_keep_the_leader_out()
    {
        const string Document = """
            {"members":[
              {"name":"m1","role":"leader","state":"stopped","host":"127.0.0.1","port":5432,"timeline":1},
              {"name":"m2","role":"replica","state":"streaming","host":"127.0.0.1","port":5433,"timeline":1,"lag":0}
            ]}
            """;
        const string Tagged = """
            {"members":[
              {"name":"m1","role":"leader","state":"running","host":"127.0.0.1","port":5432,"timeline":2,"tags":{"noloadbalance":true}},
              {"name":"m2","role":"replica","state":"streaming","host":"127.0.0.1","port":5433,"timeline":2,"lag":0}
            ]}
            """;

        Assert.Multiple(() =>
        {
            Assert.That(PatroniTopologySource.Parse(Document, Template, "test").Watched.Select(static m => m.Name), Is.EqualTo(new[] { "m2" }));
            Assert.That(PatroniTopologySource.Parse(Tagged, Template, "test").Watched.Select(static m => m.Name), Is.EqualTo(new[] { "m1", "m2" }),
                "the tag keeps reads off a replica; the leader takes none anyway, and is watched so that a read for the primary can find it");
        });
    }

    [Test]
    public void A_member_is_reached_with_the_template_s_credentials_at_patroni_s_host_and_port()
    {
        var member = PatroniTopologySource.Parse(Recorded, Template, "test").Members.Single(static m => m.Name == "m3");
        var builder = new NpgsqlConnectionStringBuilder(member.ConnectionString);

        Assert.Multiple(() =>
        {
            Assert.That((builder.Host, builder.Port), Is.EqualTo(("127.0.0.1", 5434)));
            Assert.That((builder.Database, builder.Username, builder.Password, builder.Timeout), Is.EqualTo(("shop", "app", "pw", 3)));
            Assert.That(builder.TargetSessionAttributes, Is.Null, "a replica is reached whatever its role");
        });
    }

    [Test]
    public void A_document_that_is_not_patroni_s_is_an_error()
    {
        Assert.Throws(Is.InstanceOf<System.Text.Json.JsonException>(), () => PatroniTopologySource.Parse("<html>", Template, "test"));
        Assert.Throws<FormatException>(() => PatroniTopologySource.Parse("""{"scope":"demo"}""", Template, "test"));
        Assert.That(PatroniTopologySource.Parse("""{"members":[{"name":"x","role":"replica","state":"running"}]}""", Template, "test").Members, Is.Empty, "no host: left out");
    }

    [Test]
    public async Task An_address_that_refuses_is_passed_over_and_the_one_that_answered_is_asked_first_next_time()
    {
        var handler = new RecordedPatroni { ["a:8008"] = Answer.Refused, ["b:8008"] = Answer.Json(Recorded) };
        await using var source = Source(handler, new FakeTimeProvider(), "http://a:8008", "http://b:8008");

        var (first, _) = await source.PollAsync(CancellationToken.None);
        var (second, _) = await source.PollAsync(CancellationToken.None);

        Assert.Multiple(() =>
        {
            Assert.That(first?.Readable.Select(static m => m.Name), Is.EqualTo(new[] { "m3", "m5" }));
            Assert.That(first?.Source, Is.EqualTo("Patroni at http://b:8008"));
            Assert.That(second, Is.Not.Null);
            Assert.That(handler.Asked, Is.EqualTo(new[] { "http://a:8008/cluster", "http://b:8008/cluster", "http://b:8008/cluster" }));
        });
    }

    [Test]
    public async Task An_error_status_is_passed_over()
    {
        var handler = new RecordedPatroni { ["a:8008"] = Answer.Status(HttpStatusCode.ServiceUnavailable), ["b:8008"] = Answer.Json(AfterSwitchover) };
        await using var source = Source(handler, new FakeTimeProvider(), "http://a:8008", "http://b:8008");

        var (snapshot, _) = await source.PollAsync(CancellationToken.None);

        Assert.That(snapshot?.Leader?.Name, Is.EqualTo("m3"));
        Assert.That(snapshot?.Readable.Select(static m => m.Name), Is.EqualTo(new[] { "m1" }), "the old leader is a replica now");
    }

    [Test]
    public async Task A_hung_address_gets_its_share_of_the_timeout_and_the_next_one_is_asked()
    {
        var time = new FakeTimeProvider();
        var handler = new RecordedPatroni { ["a:8008"] = Answer.Hang, ["b:8008"] = Answer.Json(Recorded) };
        await using var source = Source(handler, time, "http://a:8008", "http://b:8008");
        var started = time.GetTimestamp();

        var poll = source.PollAsync(CancellationToken.None);
        var (snapshot, _) = await Drive(poll, time);

        Assert.Multiple(() =>
        {
            Assert.That(snapshot, Is.Not.Null);
            Assert.That(handler.Asked, Has.Count.EqualTo(2));
            Assert.That(time.GetElapsedTime(started), Is.LessThanOrEqualTo(TimeSpan.FromSeconds(1)), "half of the 2 s timeout for the first of two addresses");
        });
    }

    [Test]
    public async Task A_poll_where_no_address_answers_ends_within_the_timeout_and_says_why()
    {
        var time = new FakeTimeProvider();
        var handler = new RecordedPatroni { ["a:8008"] = Answer.Hang, ["b:8008"] = Answer.Refused, ["c:8008"] = Answer.Hang };
        await using var source = Source(handler, time, "http://a:8008", "http://b:8008", "http://c:8008");
        var started = time.GetTimestamp();

        var (snapshot, problem) = await Drive(source.PollAsync(CancellationToken.None), time);

        Assert.Multiple(() =>
        {
            Assert.That(snapshot, Is.Null);
            Assert.That(time.GetElapsedTime(started), Is.LessThanOrEqualTo(TimeSpan.FromSeconds(2)), "never longer than HealthCheckTimeout");
            Assert.That(handler.Asked, Has.Count.EqualTo(3), "every address was asked");
            Assert.That(problem, Does.Contain("http://a:8008: no answer").And.Contain("http://b:8008").And.Contain("http://c:8008: no answer"));
        });
    }

    [Test]
    public async Task The_source_polls_every_interval_and_at_once_when_the_read_path_asks()
    {
        var time = new FakeTimeProvider();
        var handler = new RecordedPatroni { ["a:8008"] = Answer.Json(Recorded) };
        await using var source = Source(handler, time, "http://a:8008");
        var published = new System.Collections.Concurrent.ConcurrentQueue<TopologySnapshot>();
        source.Start(published.Enqueue);

        await Until(() => published.Count == 1, time, TimeSpan.FromMilliseconds(100)); // the interval passes

        var asked = time.GetTimestamp();
        source.RequestRefresh(); // a failover error on the read path
        await Until(() => published.Count == 2, time, TimeSpan.FromMilliseconds(50));
        Assert.That(time.GetElapsedTime(asked), Is.LessThan(TimeSpan.FromSeconds(1)), "not a whole interval later");
        Assert.That(source.Polls, Is.EqualTo(2));
    }

    [Test]
    public async Task A_cluster_configured_with_patroni_takes_its_replicas_from_it()
    {
        var handler = new RecordedPatroni { ["127.0.0.1:8008"] = Answer.Json(Recorded) };
        var options = new EfReplicaOptions
        {
            Primary = "Host=127.0.0.1,127.0.0.1:5434;Port=5432;Database=shop;Username=app;Password=pw;Target Session Attributes=primary",
            Topology = new TopologyOptions { Patroni = new PatroniTopologyOptions { Endpoints = ["http://127.0.0.1:8008"] } },
            HealthCheckInterval = TimeSpan.FromMinutes(10),
        };
        await using var cluster = EfReplicaCluster.Create("c", options, "EfReplica", null, null, null, TimeProvider.System, live: null, patroniHandler: handler);

        Assert.That(cluster.ReplicaNames, Is.Empty, "known after the first poll");
        await cluster.TopologySource.RefreshAsync(CancellationToken.None);

        Assert.That(cluster.ReplicaNames, Is.EqualTo(new[] { "m1", "m3", "m5" }), "the readable replicas, and the leader (watched, out of rotation while it answers as the primary)");
        Assert.That(cluster.Topology.Leader, Is.EqualTo("m1"));
    }

    private static PatroniTopologySource Source(RecordedPatroni handler, FakeTimeProvider time, params string[] endpoints)
        => new("c", endpoints, Template, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), time, NullLoggerFactory.Instance, handler);

    /// <summary>Advances the fake clock in small steps until <paramref name="task"/> ends (a few seconds of real time at most).</summary>
    private static async Task<T> Drive<T>(Task<T> task, FakeTimeProvider time)
    {
        for (var step = 0; step < 10_000 && !task.IsCompleted; step++)
        {
            await Task.Delay(1);
            time.Advance(TimeSpan.FromMilliseconds(10));
        }

        return await task.WaitAsync(TimeSpan.FromSeconds(10));
    }

    private static async Task Until(Func<bool> condition, FakeTimeProvider time, TimeSpan step)
    {
        for (var i = 0; i < 5_000 && !condition(); i++)
        {
            await Task.Delay(1);
            time.Advance(step);
        }

        Assert.That(condition(), Is.True);
    }

    /// <summary>What one recorded address does.</summary>
    internal sealed record Answer(HttpStatusCode Code, string? Body, bool Refuse = false, bool HangForever = false)
    {
        public static readonly Answer Refused = new(HttpStatusCode.OK, null, Refuse: true);
        public static readonly Answer Hang = new(HttpStatusCode.OK, null, HangForever: true);

        public static Answer Json(string body) => new(HttpStatusCode.OK, body);

        public static Answer Status(HttpStatusCode code) => new(code, null);
    }

    /// <summary>Replays recorded answers by host and port; no network.</summary>
    internal sealed class RecordedPatroni : HttpMessageHandler, IEnumerable<KeyValuePair<string, Answer>>
    {
        private readonly Dictionary<string, Answer> _answers = new(StringComparer.OrdinalIgnoreCase);
        private readonly System.Collections.Concurrent.ConcurrentQueue<string> _asked = new();

        public Answer this[string authority]
        {
            set => _answers[authority] = value;
        }

        public IReadOnlyList<string> Asked => [.. _asked];

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            _asked.Enqueue(request.RequestUri!.ToString());
            var answer = _answers[request.RequestUri.Authority];
            if (answer.Refuse)
            {
                throw new HttpRequestException(HttpRequestError.ConnectionError, "Connection refused");
            }

            if (answer.HangForever)
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }

            return new HttpResponseMessage(answer.Code) { Content = new StringContent(answer.Body ?? string.Empty) };
        }

        public IEnumerator<KeyValuePair<string, Answer>> GetEnumerator() => _answers.GetEnumerator();

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}

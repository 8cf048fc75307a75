using EfReplicaInterceptor.Configuration;
using EfReplicaInterceptor.Tests.Configuration;
using EfReplicaInterceptor.Topology;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;

namespace EfReplicaInterceptor.Tests.Topology;

/// <summary>
/// The replicas of configuration read again on change: a good edit is published, a bad one refused with the start-up
/// messages (naming the setting, never a value) while the running topology stays, and a change to a setting that applies
/// only at start-up is reported.
/// </summary>
public sealed class StaticTopologySourceTests
{
    private const string Secret = "pw-that-must-not-be-logged";
    private static readonly string Primary = $"Host=127.0.0.1;Port=5432;Database=app;Username=app;Password={Secret}";

    private static (string Name, int Port, int Weight) R(string name, int port, int weight = 1) => (name, port, weight);

    private static Dictionary<string, string?> Settings(params (string Name, int Port, int Weight)[] replicas)
    {
        var settings = new Dictionary<string, string?> { ["EfReplica:Primary"] = Primary, ["EfReplica:HealthCheckInterval"] = "00:00:01" };
        for (var i = 0; i < replicas.Length; i++)
        {
            settings[$"EfReplica:Replicas:{i}:Name"] = replicas[i].Name;
            settings[$"EfReplica:Replicas:{i}:ConnectionString"] = $"Host=127.0.0.1;Port={replicas[i].Port};Database=app;Username=app;Password={Secret}";
            settings[$"EfReplica:Replicas:{i}:Weight"] = replicas[i].Weight.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return settings;
    }

    private sealed class Harness : IAsyncDisposable
    {
        public Harness(Dictionary<string, string?> settings)
        {
            Provider = new MutableProvider(settings);
            Root = new ConfigurationBuilder().Add(new MutableSource(Provider)).Build();
            var section = Root.GetSection("EfReplica");
            var options = LiveSettings.ReadSection(section, "EfReplica").Options!;
            Logs = new StrictConfigurationTests.CapturingLoggerProvider();
            var loggerFactory = LoggerFactory.Create(builder => builder.SetMinimumLevel(LogLevel.Trace).AddProvider(Logs));
            Source = new StaticTopologySource("c", options, new LiveConfiguration(section.GetReloadToken, () => LiveSettings.ReadSection(section, "EfReplica")), loggerFactory);
            Source.Start(Published.Add);
        }

        public MutableProvider Provider { get; }

        public IConfigurationRoot Root { get; }

        public StrictConfigurationTests.CapturingLoggerProvider Logs { get; }

        public StaticTopologySource Source { get; }

        public List<TopologySnapshot> Published { get; } = [];

        public IEnumerable<string> Events(int id) => Logs.Lines.Where(line => line.Contains($" {id}: ", StringComparison.Ordinal));

        public ValueTask DisposeAsync() => Source.DisposeAsync();
    }

    [Test]
    public async Task The_configured_replicas_are_the_first_topology()
    {
        await using var harness = new Harness(Settings(R("a", 1), R("b", 2, 3)));
        var initial = harness.Source.Initial!;
        Assert.Multiple(() =>
        {
            Assert.That(initial.Members.Select(static m => (m.Name, m.Weight, m.Role, m.TakesReads)), Is.EqualTo(new[] { ("a", 1, MemberRole.Replica, true), ("b", 3, MemberRole.Replica, true) }));
            Assert.That(initial.Leader, Is.Null);
            Assert.That(harness.Published, Is.Empty, "nothing is published before a change");
        });
    }

    [Test]
    public async Task A_replica_added_removed_or_re_weighted_in_configuration_is_published()
    {
        await using var harness = new Harness(Settings(R("a", 1), R("b", 2)));

        harness.Provider.Replace(Settings(R("b", 2, 4), R("c", 3)));

        Assert.That(harness.Published, Has.Count.EqualTo(1));
        Assert.That(harness.Published[0].Members.Select(static m => (m.Name, m.Weight)), Is.EqualTo(new[] { ("b", 4), ("c", 1) }));
        Assert.That(harness.Events(EfReplicaInterceptor.Diagnostics.EfReplicaEventId.SettingNeedsRestart), Is.Empty, "only the replicas changed");
    }

    [TestCase("EfReplica:Replicas:1:Wieght", "2", "EfReplica:Replicas:1:Wieght")]
    [TestCase("EfReplica:Replicas:1:Weight", "0", "EfReplica:Replicas:1:Weight")]
    [TestCase("EfReplica:Replicas:1:Weight", "heavy", "EfReplica:Replicas:1:Weight")]
    [TestCase("EfReplica:Replicas:1:ConnectionString", "Host=127.0.0.1;Port=notaport;Password=" + Secret, "EfReplica:Replicas:1:ConnectionString")]
    public async Task A_bad_edit_is_refused_with_the_start_up_message_and_the_topology_stays(string key, string value, string named)
    {
        await using var harness = new Harness(Settings(R("a", 1), R("b", 2)));
        var edited = Settings(R("a", 1), R("b", 2));
        edited[key] = value;

        harness.Provider.Replace(edited);

        var refused = harness.Events(EfReplicaInterceptor.Diagnostics.EfReplicaEventId.TopologyChangeRefused).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(harness.Published, Is.Empty, "the running topology stays");
            Assert.That(refused, Has.Count.EqualTo(1));
            Assert.That(refused.Single(), Does.Contain(named));
            Assert.That(harness.Logs.Lines, Has.None.Contains(Secret), "no value is logged");
            Assert.That(harness.Logs.Lines, Has.None.Contains("heavy"), "no value is logged");
        });

        harness.Provider.Replace(Settings(R("a", 1), R("c", 3)));
        Assert.That(harness.Published.Single().Members.Select(static m => m.Name), Is.EqualTo(new[] { "a", "c" }), "the next good edit applies");
    }

    [Test]
    public async Task A_changed_start_up_setting_is_reported_as_needing_a_restart_and_the_replicas_still_apply()
    {
        await using var harness = new Harness(Settings(R("a", 1)));
        var edited = Settings(R("a", 1), R("b", 2));
        edited["EfReplica:HealthCheckInterval"] = "00:00:02";
        edited["EfReplica:Failover:MaxRetries"] = "5";

        harness.Provider.Replace(edited);
        harness.Provider.Replace(edited); // a file watcher often reports one save twice: reported once

        var restart = harness.Events(EfReplicaInterceptor.Diagnostics.EfReplicaEventId.SettingNeedsRestart).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(restart, Has.Count.EqualTo(1));
            Assert.That(restart.Single(), Does.Contain("EfReplica:Failover:MaxRetries, EfReplica:HealthCheckInterval"));
            Assert.That(restart.Single(), Does.Not.Contain("00:00:02"));
            Assert.That(harness.Published.Last().Members.Select(static m => m.Name), Is.EqualTo(new[] { "a", "b" }));
        });
    }

    [Test]
    public async Task Settings_given_in_code_are_fixed()
    {
        await using var source = new StaticTopologySource("c", new EfReplicaOptions { Primary = Primary, Replicas = [new() { ConnectionString = "Host=127.0.0.1;Port=2" }] }, live: null, LoggerFactory.Create(_ => { }));
        var published = new List<TopologySnapshot>();
        source.Start(published.Add);
        source.Reload();
        Assert.That(published, Is.Empty);
        Assert.That(source.Initial!.Members.Single().Name, Is.EqualTo("127.0.0.1:2"));
    }

    /// <summary>A configuration provider whose whole content is replaced, firing its change token as a reloaded file does.</summary>
    internal sealed class MutableProvider(Dictionary<string, string?> initial) : ConfigurationProvider
    {
        public override void Load() => Data = new Dictionary<string, string?>(initial, StringComparer.OrdinalIgnoreCase);

        public void Replace(Dictionary<string, string?> settings)
        {
            Data = new Dictionary<string, string?>(settings, StringComparer.OrdinalIgnoreCase);
            OnReload();
        }
    }

    private sealed class MutableSource(MutableProvider provider) : IConfigurationSource
    {
        public IConfigurationProvider Build(IConfigurationBuilder builder) => provider;
    }
}

using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;
using EfReplicaInterceptor.Configuration;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace EfReplicaInterceptor.Tests.Configuration;

/// <summary>
/// Configuration is strict: every configuration that was once accepted silently (issue 16) now stops a real host at
/// start-up with a message naming the setting by its path, and no message or log line shows a value or a password.
/// Nothing here needs a server: the servers are 127.0.0.1 on port 1, where nobody listens.
/// </summary>
public sealed class StrictConfigurationTests
{
    private const string Secret = "Wq7Secret-Value";
    private const string Primary = $"Host=127.0.0.1;Port=1;Database=shop;Username=app;Password={Secret}";
    private const string Replica1 = $"Host=127.0.0.2;Port=1;Database=shop;Username=app;Password={Secret}";
    private const string Replica2 = $"Host=127.0.0.3;Port=1;Database=shop;Username=app;Password={Secret}";

    /// <summary>(name, JSON of the section, text the message must contain, value that must not appear).</summary>
    public static IEnumerable<TestCaseData> BadConfigurations()
    {
        // The five measured in issue 16.
        yield return Case("replica equal to the primary",
            Section(("Primary", Primary), ("Replicas", Replicas(Primary))),
            "EfReplica:Replicas:0:ConnectionString points at the same server and database as EfReplica:Primary", Secret);
        yield return Case("weight is not a number (the replica used to disappear)",
            Section(("Primary", Primary), ("Replicas", new JsonArray(new JsonObject { ["ConnectionString"] = Replica1, ["Weight"] = "heavy" }))),
            "EfReplica:Replicas:0:Weight could not be read as a whole number", "heavy");
        yield return Case("replicas given as a string (0 replicas before)",
            Section(("Primary", Primary), ("Replicas", Replica1)),
            "EfReplica:Replicas must be a list (a JSON array), not a single value", "127.0.0.2");
        yield return Case("misspelt setting",
            Section(("Primary", Primary), ("HealthCheckIntervall", "00:00:05")),
            "EfReplica:HealthCheckIntervall is not a setting; did you mean EfReplica:HealthCheckInterval?", "00:00:05");
        yield return Case("base delay longer than max delay",
            Section(("Primary", Primary), ("Failover", new JsonObject { ["BaseDelay"] = "00:00:05", ["MaxDelay"] = "00:00:01" })),
            "EfReplica:Failover:BaseDelay is longer than EfReplica:Failover:MaxDelay", Secret);

        // Equal servers written differently.
        yield return Case("replica equal to the primary: host case and default port",
            Section(("Primary", "Host=DB.Example;Database=shop;Username=app"), ("Replicas", Replicas("Host=db.example;Port=5432;Database=shop;Username=other"))),
            "EfReplica:Replicas:0:ConnectionString points at the same server and database as EfReplica:Primary", "example");
        yield return Case("replica equal to the primary: port inside the host",
            Section(("Primary", "Host=db.example:6432;Database=shop"), ("Replicas", Replicas("Host=DB.EXAMPLE;Port=6432;Database=shop"))),
            "EfReplica:Replicas:0:ConnectionString points at the same server and database as EfReplica:Primary", "example");
        yield return Case("replica equal to another replica: host case and default port",
            Section(("Primary", Primary), ("Replicas", Replicas("Host=replica.example;Database=shop", "Host=REPLICA.example:5432;Database=shop"))),
            "EfReplica:Replicas:1 is a duplicate replica: it points at the same server and database as EfReplica:Replicas:0", "example");

        // More keys that do not bind.
        yield return Case("misspelt replica setting",
            Section(("Primary", Primary), ("Replicas", new JsonArray(new JsonObject { ["ConnectionString"] = Replica1, ["Wieght"] = 3 }))),
            "EfReplica:Replicas:0:Wieght is not a setting; did you mean EfReplica:Replicas:0:Weight?", Secret);
        yield return Case("misspelt failover setting",
            Section(("Primary", Primary), ("Failover", new JsonObject { ["MaxRetry"] = 3 })),
            "EfReplica:Failover:MaxRetry is not a setting; did you mean EfReplica:Failover:MaxRetries?", Secret);
        yield return Case("a key unlike any setting",
            Section(("Primary", Primary), ("Colour", "blue")),
            "EfReplica:Colour is not a setting of EfReplica; its settings are Primary, LoadBalancing, Replicas", "blue");
        yield return Case("a replica given as a string",
            Section(("Primary", Primary), ("Replicas", new JsonArray(Replica1))),
            "EfReplica:Replicas:0 must be a section with settings (Name, ConnectionString, Weight), not a single value", "127.0.0.2");
        yield return Case("failover given as a string",
            Section(("Primary", Primary), ("Failover", "fast")),
            "EfReplica:Failover must be a section with settings", "fast");
        yield return Case("a duration given as a section",
            Section(("Primary", Primary), ("HealthCheckInterval", new JsonObject { ["Seconds"] = 5 })),
            "EfReplica:HealthCheckInterval must be a single value, not a section", Secret);
        yield return Case("a write function given as a section",
            Section(("Primary", Primary), ("WriteFunctions", new JsonArray(new JsonObject { ["Name"] = "audit.log" }))),
            "EfReplica:WriteFunctions:0 must be a single value, not a section", "audit.log");
        yield return Case("an unknown load balancing",
            Section(("Primary", Primary), ("LoadBalancing", "Fastest")),
            "EfReplica:LoadBalancing could not be read as one of RoundRobin, LeastLag", "Fastest");
        yield return Case("an unknown read-your-writes mode",
            Section(("Primary", Primary), ("ReadYourWrites", "Sometimes")),
            "EfReplica:ReadYourWrites could not be read as one of WalPosition, TimeWindow, Primary, Off", "Sometimes");
        yield return Case("a flag that is not true or false",
            Section(("Primary", Primary), ("ShadowMode", "yes please")),
            "EfReplica:ShadowMode could not be read as true or false", "yes please");
        yield return Case("a byte budget that is not a number",
            Section(("Primary", Primary), ("MaxReplicaLagBytes", "lots")),
            "EfReplica:MaxReplicaLagBytes could not be read as a whole number", "lots");
        yield return Case("a retry count out of the number range",
            Section(("Primary", Primary), ("Failover", new JsonObject { ["MaxRetries"] = "99999999999999" })),
            "EfReplica:Failover:MaxRetries could not be read as a whole number", "99999999999999");
        yield return Case("an empty duration",
            Section(("Primary", Primary), ("MaxReplicaLag", "")),
            "EfReplica:MaxReplicaLag could not be read as a duration", Secret);
        yield return Case("a secret pasted into a typed setting",
            Section(("Primary", Primary), ("HealthCheckTimeout", $"Password={Secret}")),
            "EfReplica:HealthCheckTimeout could not be read as a duration (hh:mm:ss, for example 00:00:05); the value is not shown", Secret);
        yield return Case("a secret pasted into a list's place",
            Section(("Primary", Primary), ("WriteFunctions", Secret)),
            "EfReplica:WriteFunctions must be a list", Secret);
    }

    private static TestCaseData Case(string name, JsonObject section, string expected, string hidden)
        => new TestCaseData(section.ToJsonString(), expected, hidden).SetName($"Strict: {name}");

    [TestCaseSource(nameof(BadConfigurations))]
    public void A_bad_configuration_stops_the_host_naming_the_setting_and_never_its_value(string json, string expected, string hidden)
    {
        var logs = new CapturingLoggerProvider();
        using var host = BuildHost(json, logs);

        var exception = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        TestContext.Out.WriteLine(exception!.Message);
        Assert.That(exception.Failures, Has.Some.Contains(expected), exception.Message);
        Assert.That(exception.Message, Does.Not.Contain(hidden), "the offending value must not be shown");
        Assert.That(exception.Message, Does.Not.Contain(Secret), "a password must never appear in an error message");
        Assert.That(logs.Lines, Has.None.Contains(Secret).And.None.Contains(hidden));
    }

    [Test]
    public void A_list_item_that_cannot_be_read_keeps_the_places_of_the_items_after_it()
    {
        var json = Section(("Primary", Primary), ("Replicas", new JsonArray(Replica1, new JsonObject { ["ConnectionString"] = Replica2, ["Weight"] = 0 }))).ToJsonString();
        using var host = BuildHost(json, new CapturingLoggerProvider());

        var exception = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.That(exception!.Failures, Has.Some.StartsWith("EfReplica:Replicas:0 must be a section"));
        Assert.That(exception.Failures, Has.Some.StartsWith("EfReplica:Replicas:1:Weight must be between 1 and 100"), "the second replica is still named by its own index");
    }

    [Test]
    public void Every_problem_is_reported_at_once()
    {
        var json = Section(
            ("Primary", Primary),
            ("HealthCheckIntervall", "00:00:05"),
            ("Replicas", new JsonArray(new JsonObject { ["ConnectionString"] = Replica1, ["Weight"] = "heavy" }, new JsonObject { ["ConnectionString"] = $"Host=127.0.0.4,127.0.0.5;Port=1;Database=shop;Password={Secret}" })),
            ("Failover", new JsonObject { ["BaseDelay"] = "00:00:03", ["MaxDelay"] = "00:00:02" })).ToJsonString();
        using var host = BuildHost(json, new CapturingLoggerProvider());

        var exception = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.That(exception!.Failures.Select(failure => failure.Split(' ')[0]), Is.EquivalentTo(new[]
        {
            "EfReplica:HealthCheckIntervall",
            "EfReplica:Replicas:0:Weight",
            "EfReplica:Replicas:1:ConnectionString",
            "EfReplica:Failover:BaseDelay",
        }));
    }

    [Test]
    public async Task A_valid_configuration_from_json_starts_and_binds_every_value()
    {
        var json = Section(
            ("Primary", Primary),
            ("Replicas", new JsonArray(
                new JsonObject { ["Name"] = "east", ["ConnectionString"] = Replica1, ["Weight"] = 3 },
                new JsonObject { ["ConnectionString"] = Replica2 })),
            ("LoadBalancing", "leastlag"),
            ("ShadowMode", true),
            ("WriteFunctions", new JsonArray("audit.log_access")),
            ("HealthCheckInterval", "00:00:02"),
            ("HealthCheckTimeout", "00:00:00.200"),
            ("MaxReplicaLagBytes", 1048576),
            ("ReadYourWrites", "TimeWindow"),
            ("Failover", new JsonObject { ["MaxRetries"] = 3, ["BaseDelay"] = "00:00:01", ["MaxDelay"] = "00:00:01" })).ToJsonString();
        using var host = BuildHost(json, new CapturingLoggerProvider());

        await host.StartAsync();
        var options = host.Services.GetRequiredService<IOptions<EfReplicaOptions>>().Value;
        var cluster = host.Services.GetRequiredService<EfReplicaCluster>();
        await host.StopAsync();

        Assert.Multiple(() =>
        {
            Assert.That(cluster.ReplicaNames, Is.EqualTo(new[] { "east", "127.0.0.3:1" }));
            Assert.That(options.Replicas.Select(replica => replica.Weight), Is.EqualTo(new[] { 3, 1 }));
            Assert.That(options.LoadBalancing, Is.EqualTo(LoadBalancing.LeastLag));
            Assert.That(options.ShadowMode, Is.True);
            Assert.That(options.WriteFunctions, Is.EqualTo(new[] { "audit.log_access" }));
            Assert.That(options.HealthCheckInterval, Is.EqualTo(TimeSpan.FromSeconds(2)));
            Assert.That(options.MaxReplicaLagBytes, Is.EqualTo(1048576));
            Assert.That(options.ReadYourWrites, Is.EqualTo(ReadYourWritesMode.TimeWindow));
            Assert.That((options.Failover.MaxRetries, options.Failover.BaseDelay, options.Failover.MaxDelay), Is.EqualTo((3, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1))));
        });
    }

    [Test]
    public async Task Empty_lists_and_sections_and_the_keys_of_other_registrations_are_accepted()
    {
        var json = Section(
            ("Primary", Primary),
            ("Replicas", new JsonArray()),
            ("WriteFunctions", null),
            ("Failover", new JsonObject()),
            ("HealthCheckTimeout", "00:00:00.200"),
            ("Clusters", new JsonObject { ["orders"] = new JsonObject { ["Primary"] = Replica1 } }),
            ("Tenancy", new JsonObject { ["IdleTimeout"] = "00:01:00" })).ToJsonString();
        using var host = BuildHost(json, new CapturingLoggerProvider());

        await host.StartAsync();
        var options = host.Services.GetRequiredService<IOptions<EfReplicaOptions>>().Value;
        await host.StopAsync();

        Assert.That((options.Replicas.Count, options.WriteFunctions.Count, options.Failover.MaxRetries), Is.EqualTo((0, 0, 2)));
    }

    [Test]
    public async Task A_replica_that_is_one_host_of_a_multi_host_primary_is_not_the_primary()
    {
        // Writes find a promoted standby by listing it in the primary: the standby is then both a replica and one of the primary's hosts.
        var json = Section(
            ("Primary", "Host=127.0.0.1:1,127.0.0.2:1;Database=shop;Target Session Attributes=primary"),
            ("Replicas", Replicas("Host=127.0.0.2;Port=1;Database=shop")),
            ("HealthCheckTimeout", "00:00:00.200")).ToJsonString();
        using var host = BuildHost(json, new CapturingLoggerProvider());

        await host.StartAsync();
        var cluster = host.Services.GetRequiredService<EfReplicaCluster>();
        await host.StopAsync();

        Assert.That(cluster.ReplicaNames, Is.EqualTo(new[] { "127.0.0.2:1" }));
    }

    [Test]
    public async Task The_same_server_with_another_database_is_not_the_primary()
    {
        var json = Section(
            ("Primary", Primary),
            ("Replicas", Replicas(Primary.Replace("Database=shop", "Database=Shop", StringComparison.Ordinal))),
            ("HealthCheckTimeout", "00:00:00.200")).ToJsonString();
        using var host = BuildHost(json, new CapturingLoggerProvider());

        await host.StartAsync();
        var cluster = host.Services.GetRequiredService<EfReplicaCluster>();
        await host.StopAsync();

        Assert.That(cluster.ReplicaNames, Has.Count.EqualTo(1), "database names are case-sensitive in PostgreSQL");
    }

    [Test]
    public void Options_given_in_code_are_held_to_the_same_rules()
    {
        var exception = Assert.Throws<OptionsValidationException>(() => EfReplicaCluster.Create(new EfReplicaOptions
        {
            Primary = Primary,
            Replicas = [new ReplicaEndpointOptions { ConnectionString = Primary.Replace("127.0.0.1", "127.0.0.1:1", StringComparison.Ordinal) }],
            Failover = new FailoverOptions { BaseDelay = TimeSpan.FromSeconds(2), MaxDelay = TimeSpan.FromSeconds(1) },
        }));

        Assert.That(exception!.Failures, Has.Some.StartsWith("EfReplica:Replicas:0:ConnectionString points at the same server and database as EfReplica:Primary"));
        Assert.That(exception.Failures, Has.Some.StartsWith("EfReplica:Failover:BaseDelay is longer than EfReplica:Failover:MaxDelay"));
        Assert.That(exception.Message, Does.Not.Contain(Secret));
    }

    [Test]
    public void A_longer_timeout_than_interval_is_not_a_contradiction()
    {
        // The monitor waits the interval after a round ends, so a probe may take longer than the interval (the defaults do: 2 s and 1 s).
        var failures = EfReplicaOptionsValidator.Collect(new EfReplicaOptions { Primary = Primary, HealthCheckInterval = TimeSpan.FromSeconds(1), HealthCheckTimeout = TimeSpan.FromSeconds(10) }, "EfReplica");

        Assert.That(failures, Is.Empty);
    }

    /// <summary>Passwords that break naive parsing: <c>;</c>, quotes and <c>=</c>. Each fragment is distinctive, so a leaked piece is found.</summary>
    private static readonly string[] Passwords =
    [
        "Zq9Sup3r;Xk7Tail=Wm4Val",
        "Jx2Qu'Ot3;Pl8Eq=Rt5",
        "Hb6Dq\"Uo7;Nf3Ky",
        "Vc5Eq=Ls4=Gd8",
        "Tm2Semi;Bw9Col;Yp4Rest",
        "Kr3;s3crettail",
        "'Fz8Lead'",
        "\"Qa5Dbl\"",
        "Ue7=;'\";Hy3",
    ];

    public static IEnumerable<TestCaseData> PasswordCases()
    {
        foreach (var password in Passwords)
        {
            yield return new TestCaseData(password).SetName($"Secret never shown, quoted: {Describe(password)}");
        }
    }

    public static IEnumerable<TestCaseData> PastedPasswordCases()
    {
        foreach (var password in Passwords)
        {
            yield return new TestCaseData(password).SetName($"Secret never shown, pasted into typed settings: {Describe(password)}");
        }
    }

    public static IEnumerable<TestCaseData> MalformedPasswordCases()
    {
        foreach (var password in Passwords)
        {
            foreach (var where in new[] { "Primary", "Replica" })
            {
                yield return new TestCaseData(password, where).SetName($"Secret never shown, unquoted in {where}: {Describe(password)}");
            }
        }
    }

    [TestCaseSource(nameof(PasswordCases))]
    public async Task A_quoted_password_starts_the_host_and_appears_in_no_log_line(string password)
    {
        var logs = new CapturingLoggerProvider();
        var json = Section(
            ("Primary", Quoted("127.0.0.1", password)),
            ("Replicas", Replicas(Quoted("127.0.0.2", password))),
            ("HealthCheckTimeout", "00:00:00.200")).ToJsonString();
        using var host = BuildHost(json, logs);

        await host.StartAsync();
        var cluster = host.Services.GetRequiredService<EfReplicaCluster>();
        await cluster.RefreshHealthAsync(CancellationToken.None);
        await host.StopAsync();

        Assert.That(cluster.ReplicaNames, Has.Count.EqualTo(1), "the quoted password is read as one value");
        Assert.That(logs.Lines, Is.Not.Empty, "the monitor logged its failed probes of port 1");
        AssertNoFragment(logs.Lines, password);
    }

    [TestCaseSource(nameof(MalformedPasswordCases))]
    public async Task An_unquoted_password_with_a_semicolon_stops_the_host_without_showing_any_piece_of_it(string password, string where)
    {
        var logs = new CapturingLoggerProvider();
        var raw = $"Host=127.0.0.1;Port=1;Database=shop;Username=app;Password={password};Timeout=2";
        var json = where == "Primary"
            ? Section(("Primary", raw)).ToJsonString()
            : Section(("Primary", Primary), ("Replicas", Replicas(raw.Replace("127.0.0.1", "127.0.0.2", StringComparison.Ordinal)))).ToJsonString();
        using var host = BuildHost(json, logs);
        if (!password.Contains(';', StringComparison.Ordinal))
        {
            // Without ';' an unquoted value is read whole ('=' may appear in it, and enclosing quotes are quotes): the host starts.
            await host.StartAsync();
            await host.Services.GetRequiredService<EfReplicaCluster>().RefreshHealthAsync(CancellationToken.None);
            await host.StopAsync();
            Assert.That(logs.Lines, Is.Not.Empty);
            AssertNoFragment(logs.Lines, password);
            return;
        }

        var exception = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        var setting = where == "Primary" ? "EfReplica:Primary " : "EfReplica:Replicas:0:ConnectionString ";
        Assert.That(exception!.Failures, Has.Some.StartsWith(setting + "is not a valid Npgsql connection string"), exception.Message);
        AssertNoFragment([exception.Message, .. logs.Lines], password);
    }

    [TestCaseSource(nameof(PastedPasswordCases))]
    public void A_password_pasted_into_a_typed_setting_is_not_shown(string password)
    {
        var logs = new CapturingLoggerProvider();
        var json = Section(("Primary", Primary), ("MaxReplicaLag", password), ("Failover", new JsonObject { ["MaxRetries"] = password })).ToJsonString();
        using var host = BuildHost(json, logs);

        var exception = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.That(exception!.Failures, Has.Some.StartsWith("EfReplica:MaxReplicaLag could not be read"));
        Assert.That(exception.Failures, Has.Some.StartsWith("EfReplica:Failover:MaxRetries could not be read"));
        AssertNoFragment([exception.Message, .. logs.Lines], password);
    }

    [Test]
    public void A_misspelt_connection_string_keyword_is_still_named()
    {
        var failures = EfReplicaOptionsValidator.Collect(new EfReplicaOptions { Primary = $"Hots=x;Password={Secret}" }, "EfReplica");

        Assert.That(failures, Is.EqualTo(new[] { "EfReplica:Primary is not a valid Npgsql connection string: keyword 'hots' is not supported (did you mean 'Host'?)." }));
    }

    [Test]
    public void A_password_tail_that_looks_like_a_keyword_is_not_named()
    {
        // "Password=ab;Hots=1": "Hots" is the password's tail as much as a misspelling; it follows the password, so it is not shown.
        var failures = EfReplicaOptionsValidator.Collect(new EfReplicaOptions { Primary = "Host=x;Password=ab;Hots=1" }, "EfReplica");

        Assert.That(failures, Has.One.StartsWith("EfReplica:Primary is not a valid Npgsql connection string: a keyword is not supported (not shown"));
        Assert.That(failures[0], Does.Not.Contain("hots").IgnoreCase);
    }

    private static void AssertNoFragment(IEnumerable<string> texts, string password)
    {
        var fragments = password.Split([';', '=', '\'', '"'], StringSplitOptions.RemoveEmptyEntries).Where(static fragment => fragment.Length >= 3).Append(password).ToArray();
        foreach (var text in texts)
        {
            foreach (var fragment in fragments)
            {
                Assert.That(text, Does.Not.Contain(fragment).IgnoreCase, $"a piece of the password ({fragment.Length} characters) was shown");
            }
        }
    }

    private static string Describe(string password) => new(password.Select(static c => char.IsLetterOrDigit(c) ? 'x' : c).ToArray());

    private static string Quoted(string host, string password)
        => new NpgsqlConnectionStringBuilder { Host = host, Port = 1, Database = "shop", Username = "app", Password = password }.ConnectionString;

    private static JsonObject Section(params (string Key, JsonNode? Value)[] settings)
    {
        var section = new JsonObject();
        foreach (var (key, value) in settings)
        {
            section[key] = value;
        }

        return new JsonObject { [EfReplicaOptions.DefaultSectionName] = section };
    }

    private static JsonArray Replicas(params string[] connectionStrings)
        => new([.. connectionStrings.Select(static connectionString => (JsonNode)new JsonObject { ["ConnectionString"] = connectionString })]);

    private static IHost BuildHost(string json, CapturingLoggerProvider logs)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(json)));
        builder.Logging.SetMinimumLevel(LogLevel.Trace).AddProvider(logs);
        builder.Services.AddEfReplica(builder.Configuration.GetSection(EfReplicaOptions.DefaultSectionName));
        return builder.Build();
    }

    /// <summary>Every log line (message and exception) of every category, at every level.</summary>
    internal sealed class CapturingLoggerProvider : ILoggerProvider
    {
        private readonly ConcurrentQueue<string> _lines = new();

        public IReadOnlyCollection<string> Lines => [.. _lines];

        public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _lines);

        public void Dispose()
        {
        }

        private sealed class Logger(string category, ConcurrentQueue<string> lines) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
                => lines.Enqueue($"{category} {logLevel} {eventId.Id}: {formatter(state, exception)} {exception} {state}");
        }
    }
}

using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Docker.DotNet;
using Docker.DotNet.Models;
using DotNet.Testcontainers.Builders;
using DotNet.Testcontainers.Configurations;
using DotNet.Testcontainers.Networks;
using Testcontainers.PostgreSql;

namespace EfReplicaInterceptor.Testing.Internal;

/// <summary>
/// The Docker side of one container-backed <see cref="PostgresReplicaSet"/>: its two networks, the Docker client for
/// the operations Testcontainers 3.10 does not offer (signals, pause, network connect/disconnect), and the making of
/// primary and standby containers.
/// </summary>
/// <remarks>
/// <para>
/// Every container is created on the set's <em>application</em> network (the one its published port goes through)
/// and joined to the set's <em>servers</em> network as soon as it has started (internal: no route out of the machine), where the other
/// servers find it by its name (<c>primary</c>, <c>standby1</c>, …). Its port is published on 127.0.0.1 only, with the same number inside the container,
/// so <c>inet_server_port()</c> on the server equals <see cref="PostgresServer.Port"/>, as with local servers.
/// </para>
/// <para>
/// Both images behave alike because the harness relies only on what the official <c>postgres</c> images offer: the
/// entry point's <c>POSTGRES_USER</c>/<c>POSTGRES_PASSWORD</c>/<c>POSTGRES_DB</c>/<c>POSTGRES_INITDB_ARGS</c>, a
/// <c>postgres</c> user, <c>bash</c>, and the server programs on <c>PATH</c>. Settings go in a configuration file the
/// harness copies into the container (<c>-c config_file=…</c>), so <c>ALTER SYSTEM</c> still wins over them.
/// </para>
/// </remarks>
internal sealed class ContainerCluster : IAsyncDisposable
{
    /// <summary>The label every container and network of the harness carries; its value is the owning process.</summary>
    public const string OwnerLabel = "efreplica.owner";

    /// <summary>The in-container folder of the harness's configuration files.</summary>
    private const string ConfigurationDirectory = "/etc/efreplica";

    /// <summary>The standby's data directory: a fresh folder pg_basebackup creates (the official image's PGDATA is a volume with other permissions).</summary>
    private const string StandbyDataDirectory = "/var/lib/postgresql/standby";

    /// <summary>The primary's data directory: the images' PGDATA.</summary>
    private const string PrimaryDataDirectory = "/var/lib/postgresql/data";

    private const string InitdbArguments = "--encoding=UTF8 --locale=C";

    private static readonly SemaphoreSlim CleanupGate = new(1, 1);

    private readonly PostgresReplicaSetOptions _options;
    private readonly string _id;
    private readonly List<ContainerServer> _servers = [];

    /// <summary>The published ports, kept from this process's other sets until dispose: a stopped container starts again on its port.</summary>
    private readonly List<int> _ports = [];
    private readonly Lock _gate = new();
    private INetwork? _serversNetwork;
    private INetwork? _applicationNetwork;

    private ContainerCluster(DockerClient docker, PostgresReplicaSetOptions options, string image)
    {
        Docker = docker;
        _options = options;
        Image = image;
        _id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
    }

    public DockerClient Docker { get; }

    public string Image { get; }

    /// <summary>The limit for a container to start and accept sessions: two operation timeouts (see the readiness check).</summary>
    private TimeSpan StartTimeout => _options.OperationTimeout * 2;

    public string ServersNetworkName => $"efreplica-{_id}-servers";

    public string ApplicationNetworkName => $"efreplica-{_id}-app";

    /// <summary>Connects to the Docker engine, removes what crashed test processes left behind, and creates the set's networks.</summary>
    public static async Task<ContainerCluster> CreateAsync(PostgresReplicaSetOptions options, CancellationToken ct)
    {
        ConfigureTestcontainers();
        var docker = new DockerClientConfiguration(new Uri(DockerEndpoint())).CreateClient();
        var image = options.ContainerImage ?? PostgresReplicaSet.DefaultContainerImage;
        var cluster = new ContainerCluster(docker, options, image);
        try
        {
            await RequireImageAsync(docker, image, ct).ConfigureAwait(false);
            await RemoveAbandonedAsync(docker, ct).ConfigureAwait(false);
            cluster._serversNetwork = await cluster.CreateNetworkAsync(cluster.ServersNetworkName, isInternal: true, ct).ConfigureAwait(false);
            cluster._applicationNetwork = await cluster.CreateNetworkAsync(cluster.ApplicationNetworkName, isInternal: false, ct).ConfigureAwait(false);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Starts the primary container and waits until it accepts connections on its published port.</summary>
    public Task<PostgresServer> StartPrimaryAsync(CancellationToken ct) =>
        StartServerAsync("primary", primary: null, ct);

    /// <summary>
    /// Starts a standby container that makes itself with <c>pg_basebackup -R -X stream</c> from the primary over the
    /// servers network (retrying until the primary answers), and waits until it accepts connections.
    /// </summary>
    public Task<PostgresServer> StartStandbyAsync(string name, PostgresServer primary, CancellationToken ct) =>
        StartServerAsync(name, primary, ct);

    public async ValueTask DisposeAsync()
    {
        List<ContainerServer> servers;
        lock (_gate)
        {
            servers = [.. _servers];
            _servers.Clear();
            _ports.ForEach(FreePorts.Release);
            _ports.Clear();
        }

        var failures = new List<string>();
        foreach (var server in servers)
        {
            try
            {
                await server.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception exception) when (exception is DockerApiException or HttpRequestException or IOException or TimeoutException or InvalidOperationException)
            {
                failures.Add($"{server.Name}: {exception.Message}");
            }
        }

        foreach (var network in new[] { _applicationNetwork, _serversNetwork }.OfType<INetwork>())
        {
            try
            {
                await network.DeleteAsync().ConfigureAwait(false);
            }
            catch (Exception exception) when (exception is DockerApiException or HttpRequestException or IOException or InvalidOperationException)
            {
                failures.Add($"network {network.Name}: {exception.Message}");
            }
        }

        Docker.Dispose();
        if (failures.Count > 0)
        {
            throw new InvalidOperationException($"Removing the containers of replica set {_id} was incomplete: {string.Join("; ", failures)}.");
        }
    }

    public override string ToString() => $"containers of replica set {_id} ({Image})";

    private static string DockerEndpoint()
    {
        var host = Environment.GetEnvironmentVariable("DOCKER_HOST");
        return string.IsNullOrWhiteSpace(host) ? "unix:///var/run/docker.sock" : host;
    }

    /// <summary>
    /// What the rules of this harness need from Testcontainers, unless the environment says otherwise: no resource
    /// reaper (its image cannot be pulled without a registry; the harness removes its own containers) and the
    /// containers' host is loopback, never the bridge gateway.
    /// </summary>
    private static void ConfigureTestcontainers()
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("TESTCONTAINERS_RYUK_DISABLED")))
        {
            TestcontainersSettings.ResourceReaperEnabled = false;
        }

        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("TESTCONTAINERS_HOST_OVERRIDE")))
        {
            Environment.SetEnvironmentVariable("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1");
        }
    }

    private static async Task RequireImageAsync(DockerClient docker, string image, CancellationToken ct)
    {
        try
        {
            await docker.Images.InspectImageAsync(image, ct).ConfigureAwait(false);
        }
        catch (DockerImageNotFoundException exception)
        {
            throw new InvalidOperationException(
                $"The PostgreSQL image '{image}' is not on this machine. Build it with `bash build/postgres-image.sh` (from Debian's packages, "
                + $"no registry needed), or pull an official one (`docker pull postgres:16`) and set {PostgresReplicaSet.ImageEnvironmentVariable}=postgres:16.",
                exception);
        }
        catch (HttpRequestException exception)
        {
            throw new InvalidOperationException(
                $"The Docker engine does not answer at {DockerEndpoint()} ({exception.Message}). Start it (as root: `dockerd &`), "
                + $"or use the local backend ({PostgresReplicaSet.BackendEnvironmentVariable}=local).",
                exception);
        }
    }

    /// <summary>Removes containers and networks whose owning test process no longer exists (crashed or killed runs).</summary>
    private static async Task RemoveAbandonedAsync(DockerClient docker, CancellationToken ct)
    {
        await CleanupGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var byLabel = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [OwnerLabel] = true } };
            var containers = await docker.Containers.ListContainersAsync(new ContainersListParameters { All = true, Filters = byLabel }, ct).ConfigureAwait(false);
            foreach (var container in containers.Where(c => IsAbandoned(c.Labels)))
            {
                await docker.Containers.RemoveContainerAsync(container.ID, new ContainerRemoveParameters { Force = true, RemoveVolumes = true }, ct).ConfigureAwait(false);
            }

            var networks = await docker.Networks.ListNetworksAsync(new NetworksListParameters { Filters = byLabel }, ct).ConfigureAwait(false);
            foreach (var network in networks.Where(n => IsAbandoned(n.Labels)))
            {
                try
                {
                    await docker.Networks.DeleteNetworkAsync(network.ID, ct).ConfigureAwait(false);
                }
                catch (DockerApiException)
                {
                    // Still in use by a container another process is removing; the next start tries again.
                }
            }
        }
        finally
        {
            CleanupGate.Release();
        }
    }

    private static bool IsAbandoned(IDictionary<string, string>? labels) =>
        labels is not null && labels.TryGetValue(OwnerLabel, out var owner) && !LinuxProcesses.IsAlive(owner);

    private async Task<INetwork> CreateNetworkAsync(string name, bool isInternal, CancellationToken ct)
    {
        var network = new NetworkBuilder()
            .WithName(name)
            .WithDriver(NetworkDriver.Bridge)
            .WithLabel(OwnerLabel, LinuxProcesses.CurrentIdentity)
            .WithCreateParameterModifier(parameters => parameters.Internal = isInternal)
            .Build();
        await network.CreateAsync(ct).ConfigureAwait(false);
        return network;
    }

    private async Task<PostgresServer> StartServerAsync(string name, PostgresServer? primary, CancellationToken ct)
    {
        const int Attempts = 5;
        for (var attempt = 1; ; attempt++)
        {
            var port = FreePorts.Reserve();
            ContainerServer? container = null;
            try
            {
                container = await CreateContainerAsync(name, port, primary, ct).ConfigureAwait(false);
                lock (_gate)
                {
                    _servers.Add(container);
                    _ports.Add(port);
                }

                var server = PostgresServer.InContainer(name, port, _options.DatabaseName, primary is null ? PrimaryDataDirectory : StandbyDataDirectory, container, _options.OperationTimeout);
                await server.WaitUntilAcceptingAsync(ct).ConfigureAwait(false);
                return server;
            }
            catch (DockerApiException exception) when (attempt < Attempts && exception.Message.Contains("port is already allocated", StringComparison.OrdinalIgnoreCase))
            {
                // Another process took the port between the check and Docker's bind: try another.
                await RemoveAfterFailureAsync(container).ConfigureAwait(false);
            }
            catch (TimeoutException exception) when (container is not null)
            {
                var logs = await container.LogTailAsync().ConfigureAwait(false);
                await RemoveAfterFailureAsync(container).ConfigureAwait(false);
                throw new TimeoutException($"{exception.Message}{logs}", exception);
            }
            catch
            {
                await RemoveAfterFailureAsync(container).ConfigureAwait(false);
                throw;
            }
            finally
            {
                lock (_gate)
                {
                    if (!_ports.Contains(port))
                    {
                        FreePorts.Release(port);
                    }
                }
            }
        }
    }

    private async Task RemoveAfterFailureAsync(ContainerServer? container)
    {
        if (container is null)
        {
            return;
        }

        lock (_gate)
        {
            _servers.Remove(container);
            _ports.Remove(container.Port);
        }

        try
        {
            await container.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is DockerApiException or HttpRequestException or IOException or InvalidOperationException)
        {
            // The start failure is what the caller needs to see; leftovers are removed by the next start.
        }
    }

    private async Task<ContainerServer> CreateContainerAsync(string name, int port, PostgresServer? primary, CancellationToken ct)
    {
        var configuration = ServerConfiguration.Text(name, port, "/var/run/postgresql", "*", _options)
            + $"hba_file = '{ConfigurationDirectory}/pg_hba.conf'{Environment.NewLine}";
        var configFile = $"{ConfigurationDirectory}/postgresql.conf";
        var containerPort = string.Create(CultureInfo.InvariantCulture, $"{port}/tcp");

        var builder = new PostgreSqlBuilder()
            .WithImage(Image)
            .WithName($"efreplica-{_id}-{name}")
            .WithUsername(ServerConfiguration.UserName)
            .WithPassword(ServerConfiguration.Password)
            .WithDatabase(_options.DatabaseName)
            .WithEnvironment("POSTGRES_INITDB_ARGS", InitdbArguments)
            .WithLabel(OwnerLabel, LinuxProcesses.CurrentIdentity)
            .WithLabel("efreplica.server", name)
            // Created on the application network: Docker publishes no port of a container that starts on an internal
            // network only. The servers network is joined right after the start (a standby retries its base backup
            // until the primary's name resolves there).
            .WithNetwork(_applicationNetwork!)
            .WithResourceMapping(Encoding.UTF8.GetBytes(configuration), configFile)
            .WithResourceMapping(Encoding.UTF8.GetBytes(ServerConfiguration.ContainerHostBasedAuthentication), $"{ConfigurationDirectory}/pg_hba.conf")

            // Joined to the servers network as soon as Docker has started it, before the readiness check: a standby
            // makes its base backup over that network before it accepts connections.
            .WithStartupCallback((container, token) => Docker.Networks.ConnectNetworkAsync(
                ServersNetworkName,
                new NetworkConnectParameters { Container = container.Id, EndpointConfig = new EndpointSettings { Aliases = [name] } },
                token))

            // The builder's own readiness check runs pg_isready on port 5432; the server listens on its published port.
            // A container's start does more than a local server's (initdb or a base backup inside a fresh container),
            // so it gets two operation timeouts.
            .WithWaitStrategy(Wait.ForUnixContainer().UntilCommandIsCompleted(
                ["pg_isready", "--host", "localhost", "--port", port.ToString(CultureInfo.InvariantCulture), "--dbname", _options.DatabaseName, "--username", ServerConfiguration.UserName],
                wait => wait.WithTimeout(StartTimeout)))
            .WithCreateParameterModifier(parameters =>
            {
                // Replace the builder's command (it adds synchronous_commit=off, which adds replica lag) and its
                // random port on every address: one port, the same inside and out, published on 127.0.0.1 only.
                parameters.ExposedPorts = new Dictionary<string, EmptyStruct> { [containerPort] = default };
                parameters.HostConfig.PortBindings = new Dictionary<string, IList<PortBinding>>
                {
                    [containerPort] = [new PortBinding { HostIP = "127.0.0.1", HostPort = port.ToString(CultureInfo.InvariantCulture) }],
                };
                if (primary is null)
                {
                    parameters.Cmd = ["postgres", "-c", $"config_file={configFile}"];
                }
                else
                {
                    parameters.User = "postgres";
                    parameters.Entrypoint = ["bash", "-c", StandbyScript(primary.Port, configFile)];
                    parameters.Cmd = [];
                    parameters.Env = [.. parameters.Env.Where(variable => !variable.StartsWith("PGDATA=", StringComparison.Ordinal)), $"PGDATA={StandbyDataDirectory}", $"PGPASSWORD={ServerConfiguration.Password}"];
                }
            });

        var testcontainer = builder.Build();
        try
        {
            await testcontainer.StartAsync(ct).ConfigureAwait(false);
        }
        catch (TimeoutException exception)
        {
            var output = await ContainerServer.LogTailAsync(testcontainer).ConfigureAwait(false);
            await testcontainer.DisposeAsync().ConfigureAwait(false);
            throw new TimeoutException(
                string.Create(CultureInfo.InvariantCulture, $"PostgreSQL server '{name}' ({Image}) did not accept sessions on port {port} within {StartTimeout.TotalSeconds:0} s.{output}"),
                exception);
        }
        catch
        {
            await testcontainer.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return new ContainerServer(name, port, Docker, testcontainer, ServersNetworkName, ApplicationNetworkName, _options.OperationTimeout);
    }

    /// <summary>
    /// The standby's entry point: a base backup from the primary over the servers network when its data directory is
    /// empty (retried while the primary is not reachable yet), then the server. On a restart the data is kept.
    /// </summary>
    private string StandbyScript(int primaryPort, string configFile)
    {
        var seconds = Math.Max(1, (int)StartTimeout.TotalSeconds);
        return string.Create(
            CultureInfo.InvariantCulture,
            $$"""
            set -eu
            if [ ! -s "$PGDATA/PG_VERSION" ]; then
              deadline=$((SECONDS + {{seconds}}))
              # Wait until the servers network is attached (a second interface besides lo and the application network's),
              # so that no connection to the primary starts on a route that cannot reach it.
              until [ "$(ls /sys/class/net | grep -vc '^lo$')" -ge 2 ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.1; done
              # connect_timeout: a connection attempt that meets no answer fails in seconds and is retried, instead of
              # waiting out the kernel's SYN retries (about two minutes); -R keeps it in primary_conninfo for streaming.
              until pg_basebackup -D "$PGDATA" -d "host=primary port={{primaryPort}} user={{ServerConfiguration.UserName}} connect_timeout=5" -R -X stream -c fast --no-sync --no-manifest -w; do
                rm -rf "$PGDATA"
                if [ "$SECONDS" -ge "$deadline" ]; then echo "standby: no base backup from the primary within {{seconds}} s" >&2; exit 1; fi
                sleep 0.2
              done
            fi
            exec postgres -D "$PGDATA" -c config_file={{configFile}}
            """);
    }
}

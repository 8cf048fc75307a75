using System.Diagnostics;
using Docker.DotNet;
using Docker.DotNet.Models;
using DotNet.Testcontainers.Containers;

namespace EfReplicaInterceptor.Testing.Internal;

/// <summary>
/// The container behind one <see cref="PostgresServer"/> of the container backend: process control by signals to the
/// postmaster (the container's first process), Docker's pause, and the container's two network attachments.
/// </summary>
internal sealed class ContainerServer : IAsyncDisposable
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(50);

    private readonly DockerClient _docker;
    private readonly IContainer _container;
    private readonly string _serversNetwork;
    private readonly string _applicationNetwork;
    private readonly TimeSpan _timeout;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private bool _onServersNetwork = true;
    private bool _onApplicationNetwork = true;
    private bool _paused;
    private volatile bool _running = true;

    public ContainerServer(string name, int port, DockerClient docker, IContainer container, string serversNetwork, string applicationNetwork, TimeSpan timeout)
    {
        Name = name;
        Port = port;
        _docker = docker;
        _container = container;
        _serversNetwork = serversNetwork;
        _applicationNetwork = applicationNetwork;
        _timeout = timeout;
    }

    public string Name { get; }

    /// <summary>The port published on 127.0.0.1, the same inside the container.</summary>
    public int Port { get; }

    public string Id => _container.Id;

    /// <summary>Whether the container was running when the harness last looked (after each of its own operations).</summary>
    public bool IsRunning => _running;

    /// <summary>
    /// Stops the postmaster with the signal <c>pg_ctl stop</c> would send (SIGINT for fast, SIGQUIT for immediate) and
    /// waits until the container has exited. Does nothing when it is not running.
    /// </summary>
    public Task StopAsync(StopMode mode, CancellationToken ct) =>
        SignalAndWaitForExitAsync(mode == StopMode.Immediate ? "SIGQUIT" : "SIGINT", ct);

    /// <summary>SIGKILL to the whole container: no shutdown at all, as when a host loses power.</summary>
    public Task KillAsync(CancellationToken ct) => SignalAndWaitForExitAsync("SIGKILL", ct);

    /// <summary>Starts the stopped container again (same published port, same data); the caller waits for sessions.</summary>
    public async Task StartAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var state = await StateAsync(ct).ConfigureAwait(false);
            if (state.Running)
            {
                return;
            }

            await _docker.Containers.StartContainerAsync(Id, new ContainerStartParameters(), ct).ConfigureAwait(false);
            _running = true;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Freezes every process of the container (cgroup freezer): the kernel still accepts TCP connections, nothing answers.</summary>
    public async Task PauseAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (!_paused)
            {
                await _docker.Containers.PauseContainerAsync(Id, ct).ConfigureAwait(false);
                _paused = true;
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    public async Task UnpauseAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_paused)
            {
                await _docker.Containers.UnpauseContainerAsync(Id, ct).ConfigureAwait(false);
                _paused = false;
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Takes the container off the servers network: no replication to or from it; the application still reaches it
    /// (Docker moves the published port to the application network).
    /// </summary>
    public Task DisconnectFromServersAsync(CancellationToken ct) => SetNetworksAsync(servers: false, application: _onApplicationNetwork, ct);

    /// <summary>
    /// Takes the container off every network, which is what cuts the published port: Docker 20.10 moves a published
    /// port to any network the container is still on, so leaving only the application network would change nothing.
    /// The server keeps running; replication to or from it stops too.
    /// </summary>
    public Task DisconnectFromApplicationAsync(CancellationToken ct) => SetNetworksAsync(servers: false, application: false, ct);

    /// <summary>Joins the container to every network it was taken off again.</summary>
    public Task ReconnectAsync(CancellationToken ct) => SetNetworksAsync(servers: true, application: true, ct);

    /// <summary>The last lines of the container's output (the server log), introduced as such, for error messages.</summary>
    public Task<string> LogTailAsync() => LogTailAsync(_container);

    /// <summary>The last lines of <paramref name="container"/>'s output, introduced as such, for error messages.</summary>
    public static async Task<string> LogTailAsync(IContainer container)
    {
        try
        {
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            var (stdout, stderr) = await container.GetLogsAsync(timestampsEnabled: false, ct: limit.Token).ConfigureAwait(false);
            var lines = (stdout + stderr).Split('\n', StringSplitOptions.RemoveEmptyEntries).TakeLast(20);
            return $"{Environment.NewLine}Last lines of container {container.Name}'s output:{Environment.NewLine}{string.Join(Environment.NewLine, lines)}";
        }
        catch (Exception exception) when (exception is DockerApiException or HttpRequestException or IOException or OperationCanceledException or InvalidOperationException)
        {
            return $" (The container's output could not be read: {exception.Message})";
        }
    }

    public async ValueTask DisposeAsync()
    {
        _running = false;
        try
        {
            if (_paused)
            {
                await _docker.Containers.UnpauseContainerAsync(Id).ConfigureAwait(false);
            }
        }
        catch (DockerApiException)
        {
            // Removal below forces it anyway.
        }

        await _container.DisposeAsync().ConfigureAwait(false);
        _gate.Dispose();
    }

    private async Task SignalAndWaitForExitAsync(string signal, CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (!(await StateAsync(ct).ConfigureAwait(false)).Running)
            {
                _running = false;
                return;
            }

            try
            {
                await _docker.Containers.KillContainerAsync(Id, new ContainerKillParameters { Signal = signal }, ct).ConfigureAwait(false);
            }
            catch (DockerApiException)
            {
                // It may have exited between the look and the signal; otherwise the signal failed for real.
                if ((await StateAsync(ct).ConfigureAwait(false)).Running)
                {
                    throw;
                }
            }

            var clock = Stopwatch.StartNew();
            while ((await StateAsync(ct).ConfigureAwait(false)).Running)
            {
                if (clock.Elapsed > _timeout)
                {
                    throw new TimeoutException($"Container of PostgreSQL server '{Name}' was still running {_timeout.TotalSeconds:0} s after {signal}.");
                }

                await Task.Delay(PollInterval, ct).ConfigureAwait(false);
            }

            _running = false;
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task SetNetworksAsync(bool servers, bool application, CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            // The application network first: Docker publishes the port through it (not through an internal network).
            // Join before leaving, so that the published port always has a network while one is wanted.
            if (application && !_onApplicationNetwork)
            {
                await _docker.Networks.ConnectNetworkAsync(_applicationNetwork, new NetworkConnectParameters { Container = Id }, ct).ConfigureAwait(false);
                _onApplicationNetwork = true;
            }

            if (servers && !_onServersNetwork)
            {
                await _docker.Networks.ConnectNetworkAsync(
                    _serversNetwork,
                    new NetworkConnectParameters { Container = Id, EndpointConfig = new EndpointSettings { Aliases = [Name] } },
                    ct).ConfigureAwait(false);
                _onServersNetwork = true;
            }

            if (!servers && _onServersNetwork)
            {
                await _docker.Networks.DisconnectNetworkAsync(_serversNetwork, new NetworkDisconnectParameters { Container = Id, Force = true }, ct).ConfigureAwait(false);
                _onServersNetwork = false;
            }

            if (!application && _onApplicationNetwork)
            {
                await _docker.Networks.DisconnectNetworkAsync(_applicationNetwork, new NetworkDisconnectParameters { Container = Id, Force = true }, ct).ConfigureAwait(false);
                _onApplicationNetwork = false;
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<ContainerState> StateAsync(CancellationToken ct) =>
        (await _docker.Containers.InspectContainerAsync(Id, ct).ConfigureAwait(false)).State;
}

using System.Diagnostics.Metrics;
using EfReplicaInterceptor.Configuration;
using EfReplicaInterceptor.Consistency;
using EfReplicaInterceptor.Diagnostics;
using EfReplicaInterceptor.Failover;
using EfReplicaInterceptor.Interception;
using EfReplicaInterceptor.Routing;
using EfReplicaInterceptor.Topology;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;
using Polly;

namespace EfReplicaInterceptor;

/// <summary>
/// One replicated PostgreSQL cluster as the application sees it: the primary's data source, one data source per replica
/// (each built once, with the same <see cref="NpgsqlDataSourceBuilder"/> configuration, so type mappings such as
/// <c>MapEnum</c> work on reads served by a replica), and the interceptors that route a DbContext's commands over them.
/// </summary>
/// <remarks>
/// With dependency injection, <c>services.AddEfReplica(configuration.GetSection("EfReplica"))</c> registers one and the
/// container disposes it. Without it, <see cref="Create(EfReplicaOptions, ILoggerFactory?, Action{NpgsqlDataSourceBuilder}?)"/> builds one; dispose it when the application stops.
/// </remarks>
/// <example>
/// <code>
/// services.AddDbContext&lt;ShopContext&gt;((sp, options) =&gt;
/// {
///     var cluster = sp.GetRequiredService&lt;EfReplicaCluster&gt;();
///     options.UseNpgsql(cluster.PrimaryDataSource).AddInterceptors(cluster.Interceptors);
/// });
/// </code>
/// </example>
public sealed class EfReplicaCluster : IAsyncDisposable, IDisposable
{
    /// <summary>The name of the cluster registered without a name.</summary>
    public const string DefaultName = "default";

    private readonly ReplicaMembership _membership;
    private readonly TopologyManager _topology;
    private readonly ITopologySource _source;
    private readonly ClusterMonitor _monitor;
    private readonly ResiliencePipeline _idempotentRetry;
    private readonly CancellationTokenSource _stopping = new();
    private Task _learning = Task.CompletedTask;
    private readonly EfReplicaMetrics _metrics;
    private readonly bool _ownsMetrics;
    private int _disposed;

    private EfReplicaCluster(
        string name,
        NpgsqlDataSource primary,
        ReplicaMembership membership,
        TopologyManager topology,
        ITopologySource source,
        CommandRouter router,
        ClusterMonitor monitor,
        EfReplicaMetrics metrics,
        bool ownsMetrics,
        FailoverOptions failover,
        TimeProvider timeProvider)
    {
        _idempotentRetry = RetryPipelines.Build("EfReplica.IdempotentRetry", failover.MaxRetries, failover, static args => ValueTask.FromResult(
            args.Outcome.Exception is { } exception
            && (exception is EfReplicaFailoverException || FailoverErrors.Classify(exception, FailurePhase.Executing, onStandby: false) != ServerErrorKind.None)), timeProvider);
        Name = name;
        TimeProvider = timeProvider;
        PrimaryDataSource = primary;
        _membership = membership;
        _topology = topology;
        _source = source;
        _monitor = monitor;
        Router = router;
        _metrics = metrics;
        _ownsMetrics = ownsMetrics;
        Interceptors = CreateInterceptors(new FixedRouterResolver(router));
    }

    /// <summary>One set of the library's interceptors, finding each context's router through <paramref name="routers"/>.</summary>
    internal static IInterceptor[] CreateInterceptors(RouterResolver routers) =>
    [
        new ReplicaCommandInterceptor(routers),
        new ReplicaConnectionInterceptor(routers),
        new ReplicaTransactionInterceptor(routers),
        new ReplicaSaveChangesInterceptor(),
    ];

    /// <summary>The cluster's name, used in logs and metrics.</summary>
    public string Name { get; }

    /// <summary>The cluster's clock: every wait of the library is kept on it.</summary>
    internal TimeProvider TimeProvider { get; }

    /// <summary>
    /// The primary's data source, built from <see cref="EfReplicaOptions.Primary"/>. Pass it to <c>UseNpgsql</c> so that the
    /// primary's connection string is configured in one place.
    /// </summary>
    public NpgsqlDataSource PrimaryDataSource { get; }

    /// <summary>The interceptors to add to every DbContext that uses this cluster: <c>options.AddInterceptors(cluster.Interceptors)</c>.</summary>
    public IReadOnlyList<IInterceptor> Interceptors { get; }

    /// <summary>The names of the replicas now, in the topology source's order (configuration order for listed replicas).</summary>
    public IReadOnlyList<string> ReplicaNames => Array.ConvertAll(_membership.Current.Replicas, static replica => replica.Name);

    internal CommandRouter Router { get; }

    internal ClusterMonitor Monitor => _monitor;

    /// <summary>Turns the topology source's snapshots into the replica set.</summary>
    internal TopologyManager Topology => _topology;

    /// <summary>Where the replicas come from (configuration, Patroni).</summary>
    internal ITopologySource TopologySource => _source;

    /// <summary>
    /// Looks at the topology source (a Patroni poll), probes the primary and every replica now and updates the rotation,
    /// then returns. The cluster probes by itself in the background from the moment it is created; replicas serve reads
    /// only once a probe has found them healthy, so call this (the host does it at start) to route reads to replicas from
    /// the first command on.
    /// </summary>
    public async Task RefreshHealthAsync(CancellationToken cancellationToken = default)
    {
        await _source.RefreshAsync(cancellationToken).ConfigureAwait(false);
        await _monitor.ProbeNowAsync(cancellationToken).ConfigureAwait(false);
        await _learning.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads the application's volatile functions from the primary until it succeeds, then installs the classifier.</summary>
    private async Task LearnVolatileFunctionsAsync(WatchedServer primary, string[] configured, TimeSpan retryInterval, ILogger logger)
    {
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                var learned = await SqlClassifier.LoadVolatileFunctionsAsync(primary, _stopping.Token).ConfigureAwait(false);
                Router.UseClassifier(new SqlClassifier(configured.Concat(learned)));
                Log.VolatileFunctionsLearned(logger, Name, learned.Count);
                return;
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception exception)
            {
                Log.VolatileFunctionsNotLearned(logger, exception, Name);
                try
                {
                    await Task.Delay(retryInterval, TimeProvider, _stopping.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>The replicas now (the current set: one snapshot).</summary>
    internal IReadOnlyList<ReplicaEndpoint> Replicas => _membership.Current.Replicas;

    /// <summary>Stops following the topology and monitoring (the host stops); the data sources stay until disposal.</summary>
    internal async Task StopMonitoringAsync()
    {
        await _source.DisposeAsync().ConfigureAwait(false);
        await _monitor.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Builds a cluster without dependency injection. <paramref name="options"/> is validated first and copied: later changes
    /// to it have no effect.
    /// </summary>
    /// <param name="options">The settings; see <see cref="EfReplicaOptions"/>.</param>
    /// <param name="loggerFactory">Where log events go. Default: nowhere.</param>
    /// <param name="configureDataSource">Applied to the data source builder of the primary and of every replica, for example to
    /// map PostgreSQL enums. Default: nothing.</param>
    /// <exception cref="OptionsValidationException">A setting is invalid; the message names it.</exception>
    public static EfReplicaCluster Create(
        EfReplicaOptions options,
        ILoggerFactory? loggerFactory = null,
        Action<NpgsqlDataSourceBuilder>? configureDataSource = null)
        => Create(DefaultName, options, EfReplicaOptions.DefaultSectionName, loggerFactory, configureDataSource, meterFactory: null, TimeProvider.System);

    internal static EfReplicaCluster Create(
        string name,
        EfReplicaOptions options,
        string sectionPath,
        ILoggerFactory? loggerFactory,
        Action<NpgsqlDataSourceBuilder>? configureDataSource,
        IMeterFactory? meterFactory,
        TimeProvider timeProvider,
        LiveConfiguration? live = null,
        HttpMessageHandler? patroniHandler = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = EfReplicaOptionsValidator.Collect(options, sectionPath);
        if (failures.Count > 0)
        {
            throw new OptionsValidationException(name, typeof(EfReplicaOptions), failures);
        }

        // Every server's data source, every endpoint and the topology source are built by the parts, here and when the
        // topology changes later.
        loggerFactory ??= NullLoggerFactory.Instance;
        var parts = new ClusterParts(name, options, loggerFactory, configureDataSource, timeProvider);
        var (primary, primaryTypes) = parts.BuildPrimaryDataSource();
        var primaryServer = parts.BuildPrimary(primary);
        var membership = new ReplicaMembership(ReplicaSetSnapshot.Empty);
        SplitBrainDetector? splitBrain = null;
        ITopologySource? source = null;
        ClusterMonitor? monitor = null;
        TopologyManager? topology = null;
        try
        {
            var position = new PrimaryPosition();
            splitBrain = parts.BuildSplitBrainDetector();
            monitor = new ClusterMonitor(name, primaryServer, [], options, position, splitBrain, timeProvider, loggerFactory, primaryTypes);
            topology = new TopologyManager(name, membership, monitor, parts.BuildReplica, timeProvider, loggerFactory);
            source = parts.BuildSource(live, patroniHandler);
            if (source.Initial is { } initial)
            {
                topology.Apply(initial, initial: true);
            }

            var ownsMetrics = meterFactory is null;
            var metrics = new EfReplicaMetrics(meterFactory);
            var configuredFunctions = options.WriteFunctions.ToArray();
            var classifier = configuredFunctions.Length == 0 ? SqlClassifier.Default : new SqlClassifier(configuredFunctions);
            var selector = new ReplicaSelector(membership, options.LoadBalancing, timeProvider, options.MaxReplicaLag, options.HealthCheckInterval);
            var consistency = new ConsistencyResolver(name, new ServerRoundTrips(primaryServer, options.CaptureWritePositionForTests), position, selector, options, metrics, loggerFactory, timeProvider, LongForkWait.For(name, options, primaryServer, metrics, loggerFactory, timeProvider));
            var telemetry = new RoutingTelemetry(name, options.ShadowMode, metrics, loggerFactory);
            var reads = new ReadExecutor(name, primaryServer, selector, consistency, telemetry, metrics, options.Failover, timeProvider, loggerFactory);
            var router = new CommandRouter(
                new RoutingRules(options.ReadYourWrites, options.ReadYourWritesWindow, timeProvider),
                selector,
                consistency,
                reads,
                telemetry,
                new WriteFailureTranslator(name, options.ShadowMode, loggerFactory, membership.RequestRefresh, primaryTypes, primary.Clear),
                new EfCommandWatchdog(primaryServer),
                options.LearnVolatileFunctions ? null : classifier,
                timeProvider);
            metrics.ObserveReplicas(name, () => Array.ConvertAll(membership.Current.Replicas, replica => new ReplicaGauge(
                replica.Name, replica.CurrentLag(timeProvider.GetTimestamp()), replica.Health.LagBytes, replica.IsAdmitted)));
            metrics.ObserveWritableServers(name, () => monitor.WritableServers);
            Log.ClusterStarted(loggerFactory.CreateLogger(Log.TopologyCategory), name, membership.Current.Replicas.Length, options.ShadowMode ? " (shadow mode: everything runs on the primary)" : string.Empty);
            var cluster = new EfReplicaCluster(name, primary, membership, topology, source, router, monitor, metrics, ownsMetrics, options.Failover, timeProvider);
            membership.OnRefreshRequested(source.RequestRefresh);
            source.Start(snapshot => topology.Apply(snapshot));
            monitor.Start();
            if (options.LearnVolatileFunctions)
            {
                cluster._learning = cluster.LearnVolatileFunctionsAsync(primaryServer, configuredFunctions, options.HealthCheckInterval, loggerFactory.CreateLogger(Log.TopologyCategory));
            }

            return cluster;
        }
        catch
        {
            source?.DisposeAsync().AsTask().GetAwaiter().GetResult();
            if (monitor is not null)
            {
                monitor.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
            else
            {
                splitBrain?.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }

            topology?.Dispose();
            primary.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Runs a unit of work the caller declares idempotent (for example a SaveChanges whose keys are generated by the client,
    /// or a job step with an idempotency key) and, if it fails because of a failover (an
    /// <see cref="EfReplicaFailoverException"/> of either outcome, or a failover error from the server), runs it again as a
    /// whole with the same bounded retry as reads (<see cref="EfReplicaOptions.Failover"/>), with backoff. Use a new
    /// DbContext inside <paramref name="unitOfWork"/> on every run. Other errors are not retried.
    /// </summary>
    public Task ExecuteIdempotentAsync(Func<CancellationToken, Task> unitOfWork, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(unitOfWork);
        return ExecuteIdempotentAsync<bool>(async token =>
        {
            await unitOfWork(token).ConfigureAwait(false);
            return true;
        }, cancellationToken);
    }

    /// <inheritdoc cref="ExecuteIdempotentAsync(Func{CancellationToken, Task}, CancellationToken)"/>
    public async Task<T> ExecuteIdempotentAsync<T>(Func<CancellationToken, Task<T>> unitOfWork, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(unitOfWork);
        return await _idempotentRetry.ExecuteAsync(
            static async (work, token) => await work(token).ConfigureAwait(false),
            unitOfWork,
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Disposes the data sources (closing their idle pooled connections).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await _learning.ConfigureAwait(false);
        await _source.DisposeAsync().ConfigureAwait(false);
        await _monitor.DisposeAsync().ConfigureAwait(false);
        await _topology.DisposeAsync().ConfigureAwait(false); // the replicas still draining, then the current ones

        await PrimaryDataSource.DisposeAsync().ConfigureAwait(false);
        _stopping.Dispose();
        if (_ownsMetrics)
        {
            _metrics.Dispose();
        }
    }

    /// <inheritdoc cref="DisposeAsync"/>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // The monitor's loop is asynchronous; waiting for it here is the one place a sync caller must block.
        _stopping.Cancel();
        _learning.GetAwaiter().GetResult();
        _source.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _monitor.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _topology.Dispose();

        PrimaryDataSource.Dispose();
        _stopping.Dispose();
        if (_ownsMetrics)
        {
            _metrics.Dispose();
        }
    }
}

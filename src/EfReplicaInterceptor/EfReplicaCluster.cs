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

    private readonly ReplicaEndpoint[] _replicas;
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
        ReplicaEndpoint[] replicas,
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
        PrimaryDataSource = primary;
        _replicas = replicas;
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

    /// <summary>
    /// The primary's data source, built from <see cref="EfReplicaOptions.Primary"/>. Pass it to <c>UseNpgsql</c> so that the
    /// primary's connection string is configured in one place.
    /// </summary>
    public NpgsqlDataSource PrimaryDataSource { get; }

    /// <summary>The interceptors to add to every DbContext that uses this cluster: <c>options.AddInterceptors(cluster.Interceptors)</c>.</summary>
    public IReadOnlyList<IInterceptor> Interceptors { get; }

    /// <summary>The configured names of the replicas, in configuration order.</summary>
    public IReadOnlyList<string> ReplicaNames => Array.ConvertAll(_replicas, static replica => replica.Name);

    internal CommandRouter Router { get; }

    internal ClusterMonitor Monitor => _monitor;

    /// <summary>
    /// Probes the primary and every replica now and updates the rotation, then returns. The cluster probes by itself in the
    /// background from the moment it is created; replicas serve reads only once a probe has found them healthy, so call
    /// this (the host does it at start) to route reads to replicas from the first command on.
    /// </summary>
    public async Task RefreshHealthAsync(CancellationToken cancellationToken = default)
    {
        await _monitor.ProbeNowAsync(cancellationToken).ConfigureAwait(false);
        await _learning.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads the application's volatile functions from the primary until it succeeds, then installs the classifier.</summary>
    private async Task LearnVolatileFunctionsAsync(string[] configured, TimeSpan retryInterval, ILogger logger)
    {
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                var learned = await SqlClassifier.LoadVolatileFunctionsAsync(PrimaryDataSource, _stopping.Token).ConfigureAwait(false);
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
                    await Task.Delay(retryInterval, _stopping.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    internal IReadOnlyList<ReplicaEndpoint> Replicas => _replicas;

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
        TimeProvider timeProvider)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = EfReplicaOptionsValidator.Collect(options, sectionPath);
        if (failures.Count > 0)
        {
            throw new OptionsValidationException(name, typeof(EfReplicaOptions), failures);
        }

        loggerFactory ??= NullLoggerFactory.Instance;
        var primary = BuildDataSource(options.Primary!, $"{name}:primary", loggerFactory, configureDataSource);
        var deadlines = new ServerDeadlines(FailoverOptionsValidator.ReadDeadline(options), options.HealthCheckTimeout, timeProvider);
        var primaryServer = new WatchedServer("the primary", primary, new ServerLiveness(timeProvider), deadlines);
        var replicas = new ReplicaEndpoint[options.Replicas.Count];
        try
        {
            for (var i = 0; i < replicas.Length; i++)
            {
                var replicaOptions = options.Replicas[i];
                var replicaName = EfReplicaOptionsValidator.ReplicaName(replicaOptions, new NpgsqlConnectionStringBuilder(replicaOptions.ConnectionString), i);
                var dataSource = BuildDataSource(replicaOptions.ConnectionString!, $"{name}:{replicaName}", loggerFactory, configureDataSource);
                replicas[i] = new ReplicaEndpoint(i, replicaName, dataSource, timeProvider, options.HealthCheckInterval, deadlines);
            }
        }
        catch
        {
            primary.Dispose();
            foreach (var replica in replicas)
            {
                replica?.DataSource.Dispose();
            }

            throw;
        }

        var ownsMetrics = meterFactory is null;
        var metrics = new EfReplicaMetrics(meterFactory);
        var configuredFunctions = options.WriteFunctions.ToArray();
        var classifier = configuredFunctions.Length == 0 ? SqlClassifier.Default : new SqlClassifier(configuredFunctions);
        var position = new PrimaryPosition();
        var selector = new ReplicaSelector(replicas, options.LoadBalancing, options.Replicas.Select(replica => replica.Weight).ToArray(), timeProvider, options.MaxReplicaLag, options.HealthCheckInterval);
        var readYourWrites = new ReadYourWrites(name, primaryServer, position, selector, options, metrics, loggerFactory, timeProvider);
        var telemetry = new RoutingTelemetry(name, options.ShadowMode, metrics, loggerFactory);
        var reads = new ReadExecutor(name, primaryServer, selector, readYourWrites, telemetry, metrics, options.Failover, timeProvider, loggerFactory);
        var router = new CommandRouter(
            new RoutingRules(options.ReadYourWrites, options.ReadYourWritesWindow, timeProvider),
            selector,
            readYourWrites,
            reads,
            telemetry,
            new WriteFailureTranslator(name, options.ShadowMode, loggerFactory),
            new EfCommandWatchdog(primaryServer),
            options.LearnVolatileFunctions ? null : classifier,
            timeProvider);
        var monitor = new ClusterMonitor(name, primaryServer, replicas, options, position, timeProvider, loggerFactory);
        metrics.ObserveReplicas(name, () => Array.ConvertAll(replicas, replica => new ReplicaGauge(
            replica.Name, replica.CurrentLag(timeProvider.GetTimestamp()), replica.Health.LagBytes, replica.IsAdmitted)));
        metrics.ObserveWritableServers(name, () => monitor.WritableServers);
        Log.ClusterStarted(loggerFactory.CreateLogger(Log.TopologyCategory), name, replicas.Length, options.ShadowMode ? " (shadow mode: everything runs on the primary)" : string.Empty);
        var cluster = new EfReplicaCluster(name, primary, replicas, router, monitor, metrics, ownsMetrics, options.Failover, timeProvider);
        monitor.Start();
        if (options.LearnVolatileFunctions)
        {
            cluster._learning = cluster.LearnVolatileFunctionsAsync(configuredFunctions, options.HealthCheckInterval, loggerFactory.CreateLogger(Log.TopologyCategory));
        }

        return cluster;
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

    private static NpgsqlDataSource BuildDataSource(string connectionString, string dataSourceName, ILoggerFactory loggerFactory, Action<NpgsqlDataSourceBuilder>? configure)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString) { Name = dataSourceName };
        builder.UseLoggerFactory(loggerFactory);
        configure?.Invoke(builder);
        return builder.Build();
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
        await _monitor.DisposeAsync().ConfigureAwait(false);
        foreach (var replica in _replicas)
        {
            await replica.DisposeAsync().ConfigureAwait(false);
        }

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
        _monitor.DisposeAsync().AsTask().GetAwaiter().GetResult();
        foreach (var replica in _replicas)
        {
            replica.DataSource.Dispose();
        }

        PrimaryDataSource.Dispose();
        _stopping.Dispose();
        if (_ownsMetrics)
        {
            _metrics.Dispose();
        }
    }
}

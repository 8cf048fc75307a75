using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EfReplicaInterceptor.Demo;

/// <summary>One routing decision as the library logged it (event 1000, <c>CommandRouted</c>).</summary>
internal sealed record RoutedCommand(string CommandSource, string Target, string Reason);

/// <summary>
/// A logger provider that keeps the library's routing decisions (event 1000, from its structured values Target, Reason and
/// CommandSource) and prints the library's own events of level Information and above (a replica leaving or rejoining the
/// rotation, a read that failed on a replica) on the demo's console.
/// </summary>
/// <param name="time">The clock of the printed times.</param>
/// <param name="started">When the demo started (<see cref="TimeProvider.GetTimestamp"/>): printed times count from there.</param>
[ProviderAlias("RoutingCapture")]
internal sealed class RoutingCapture(TimeProvider time, long started) : ILoggerProvider
{
    /// <summary>The library logs under <c>EfReplicaInterceptor.Routing</c> and <c>EfReplicaInterceptor.Topology</c>.</summary>
    public const string CategoryPrefix = "EfReplicaInterceptor.";

    private const int CommandRoutedEventId = 1000;

    private readonly Lock _gate = new();
    private readonly List<RoutedCommand> _routed = [];
    private readonly TimeProvider _time = time;
    private readonly long _started = started;
    private string? _lastPrinted;
    private int _repeats;

    /// <summary>How many decisions were captured so far: a mark for <see cref="LastSince"/>.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _routed.Count;
            }
        }
    }

    /// <summary>The last decision captured after <paramref name="mark"/>, or null when there was none.</summary>
    public RoutedCommand? LastSince(int mark)
    {
        lock (_gate)
        {
            return _routed.Count > mark ? _routed[^1] : null;
        }
    }

    /// <summary>Prints how often the last printed event repeated since it was printed (a burst of failed writes logs one each).</summary>
    public void FlushRepeats()
    {
        lock (_gate)
        {
            if (_repeats > 0)
            {
                DemoConsole.Line($"      (the library logged that {_repeats} more times)");
                _repeats = 0;
            }
        }
    }

    public ILogger CreateLogger(string categoryName)
        => categoryName.StartsWith(CategoryPrefix, StringComparison.Ordinal) ? new CaptureLogger(this, categoryName) : NullLogger.Instance;

    public void Dispose()
    {
    }

    private void Record(RoutedCommand command)
    {
        lock (_gate)
        {
            _routed.Add(command);
        }
    }

    private sealed class CaptureLogger(RoutingCapture owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Id == CommandRoutedEventId && state is IReadOnlyList<KeyValuePair<string, object?>> values)
            {
                string Get(string key) => values.FirstOrDefault(value => value.Key == key).Value?.ToString() ?? "";
                owner.Record(new RoutedCommand(Get("CommandSource"), Get("Target"), Get("Reason")));
            }

            if (logLevel >= LogLevel.Information)
            {
                // The message only: a replica that failed a read comes with its exception, which is not worth a stack trace here.
                // The same event again right after itself is counted, not printed.
                var message = $"{Level(logLevel)} {category}[{eventId.Id}] {formatter(state, exception)}";
                lock (owner._gate)
                {
                    if (message == owner._lastPrinted)
                    {
                        owner._repeats++;
                        return;
                    }
                }

                owner.FlushRepeats();
                var seconds = owner._time.GetElapsedTime(owner._started).TotalSeconds;
                DemoConsole.Line($"      [{seconds,5:0.0} s] {message}");
                lock (owner._gate)
                {
                    owner._lastPrinted = message;
                }
            }
        }

        private static string Level(LogLevel level) => level switch
        {
            LogLevel.Information => "info:",
            LogLevel.Warning => "warn:",
            _ => "fail:",
        };
    }
}

using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace EfReplicaInterceptor.TestSupport;

/// <summary>One routing decision as the library logged it (event 1000, or 1001 in shadow mode).</summary>
public sealed record RoutedCommand(int EventId, string CommandSource, string Target, string Reason);

/// <summary>A logger provider that keeps the library's routing events, to check the reason beside the server's answer.</summary>
public sealed class RoutingRecorder : ILoggerProvider
{
    private readonly ConcurrentQueue<RoutedCommand> _commands = new();
    private readonly ConcurrentQueue<(int EventId, LogLevel Level, string Message)> _all = new();
    private readonly ConcurrentQueue<string> _everything = new();

    public IReadOnlyList<RoutedCommand> Commands => [.. _commands];

    /// <summary>The library's own events (categories <c>EfReplicaInterceptor.*</c>).</summary>
    public IReadOnlyList<(int EventId, LogLevel Level, string Message)> AllEvents => [.. _all];

    /// <summary>Every message logged through the factory, Npgsql's included.</summary>
    public IReadOnlyList<string> EverythingLogged => [.. _everything];

    public RoutedCommand Last => _commands.Last();

    public void Clear()
    {
        _commands.Clear();
        _all.Clear();
        _everything.Clear();
    }

    public ILoggerFactory CreateFactory() => LoggerFactory.Create(builder => builder.SetMinimumLevel(LogLevel.Debug).AddProvider(this));

    public ILogger CreateLogger(string categoryName) => new Recorder(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Recorder(RoutingRecorder owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var message = formatter(state, exception);
            owner._everything.Enqueue(message);
            if (!category.StartsWith("EfReplicaInterceptor.", StringComparison.Ordinal))
            {
                return; // Npgsql's own events reuse the same ids
            }

            owner._all.Enqueue((eventId.Id, logLevel, message));
            if (eventId.Id is 1000 or 1001 && state is IReadOnlyList<KeyValuePair<string, object?>> values)
            {
                string Get(string key) => values.FirstOrDefault(v => v.Key == key).Value?.ToString() ?? "";
                owner._commands.Enqueue(new RoutedCommand(eventId.Id, Get("CommandSource"), Get("Target"), Get("Reason")));
            }
        }
    }
}

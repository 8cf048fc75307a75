using Microsoft.Extensions.Logging;

namespace EfReplicaInterceptor.AspNetCore;

/// <summary>
/// The middleware's log events (category <see cref="Category"/>, ids 4000–4002). No event ever carries a token.
/// </summary>
internal static partial class Log
{
    public const string Category = "EfReplicaInterceptor.AspNetCore";

    [LoggerMessage(EventId = 4000, EventName = "ConsistencyTokenNotWritten", Level = LogLevel.Warning,
        Message = "The consistency token of a request to {Path} could not be obtained ({ErrorType}); the response carries no new token, so the client's next request may read a replica that has not replayed this request's writes.")]
    public static partial void TokenNotWritten(ILogger logger, string path, string errorType, Exception exception);

    [LoggerMessage(EventId = 4001, EventName = "ConsistencyTokenWritten", Level = LogLevel.Debug,
        Message = "A new consistency token was written to the response of {Path} (cookie: {Cookie}, header: {Header}).")]
    public static partial void TokenWritten(ILogger logger, string path, bool cookie, bool header);

    [LoggerMessage(EventId = 4002, EventName = "ConsistencyTokenDropped", Level = LogLevel.Debug,
        Message = "The consistency token the request to {Path} brought was not valid and was ignored; the response tells the client to drop it.")]
    public static partial void TokenDropped(ILogger logger, string path);
}

using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace EfReplicaInterceptor.AspNetCore;

/// <summary>
/// Runs each request inside an ambient consistency scope (<see cref="EfReplicaScope.BeginConsistency(string?, InvalidTokenHandling)"/>)
/// restored from the token the client brought (header first, then cookie), and, just before the response starts, writes
/// the scope's token back when it differs from the one the request brought: after a write, after a restored token was
/// lowered, or to tell the client to drop a token that was not valid.
/// </summary>
internal sealed class EfReplicaConsistencyMiddleware
{
    private static readonly Func<object, Task> WriteTokenCallback = state => ((TokenResponse)state).WriteAsync();

    private readonly RequestDelegate _next;
    private readonly EfReplicaConsistencyOptions _options;
    private readonly ILogger _logger;

    public EfReplicaConsistencyMiddleware(RequestDelegate next, IOptions<EfReplicaConsistencyOptions> options, ILoggerFactory loggerFactory)
    {
        _next = next;
        _options = options.Value;
        // AddEfReplicaConsistency registers the validator; without it (options configured another way) check here, once.
        var result = new EfReplicaConsistencyOptionsValidator().Validate(Options.DefaultName, _options);
        if (result.Failed)
        {
            throw new OptionsValidationException(Options.DefaultName, typeof(EfReplicaConsistencyOptions), result.Failures);
        }

        _logger = loggerFactory.CreateLogger(Log.Category);
    }

    public Task InvokeAsync(HttpContext context)
        => context.GetEndpoint()?.Metadata.GetMetadata<DisableEfReplicaConsistencyAttribute>() is null
            ? InvokeInScopeAsync(context)
            : _next(context);

    private async Task InvokeInScopeAsync(HttpContext context)
    {
        var (token, source) = ReadToken(context.Request);
        using var scope = EfReplicaScope.BeginConsistency(token, _options.InvalidTokenHandling);
        // Written when the response starts, not after _next: by then the headers of a streamed (or flushed) response are
        // gone. The scope object outlives the using block for responses that start after the pipeline returns.
        context.Response.OnStarting(WriteTokenCallback, new TokenResponse(this, context, scope, token, source));
        await _next(context).ConfigureAwait(false);
    }

    private (string? Token, TokenSource Source) ReadToken(HttpRequest request)
    {
        if (_options.UseHeader && Single(request.Headers[_options.HeaderName]) is { } fromHeader)
        {
            return (fromHeader, TokenSource.Header);
        }

        if (_options.UseCookie && request.Cookies[_options.Cookie.Name!] is { Length: > 0 } fromCookie)
        {
            return (fromCookie, TokenSource.Cookie);
        }

        return (null, TokenSource.None);

        // Several values, or an empty one, are no token (several could only be two clients' tokens mixed).
        static string? Single(StringValues values) => values.Count == 1 && !string.IsNullOrEmpty(values[0]) ? values[0] : null;
    }

    private async Task WriteAsync(HttpContext context, EfReplicaConsistencyScope scope, string? requestToken, TokenSource source)
    {
        string? token;
        try
        {
            token = await scope.GetTokenAsync(context.RequestAborted).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return; // the client is gone
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            // The writes themselves succeeded; failing the response now would invite the client to repeat them. The position
            // could not be captured (the primary unreachable, say): say so, without the token or the SQL.
            Log.TokenNotWritten(_logger, context.Request.Path, exception.GetType().Name, exception);
            return;
        }

        if (string.Equals(token, requestToken, StringComparison.Ordinal))
        {
            return; // nothing changed: no Set-Cookie on every response
        }

        var response = context.Response;
        if (token is null)
        {
            // The request's token was rejected (malformed or foreign) and ignored: stop the client sending it again.
            if (source == TokenSource.Cookie)
            {
                response.Cookies.Delete(_options.Cookie.Name!, _options.Cookie.Build(context));
            }
            else if (source == TokenSource.Header)
            {
                response.Headers[_options.HeaderName] = string.Empty;
            }

            Log.TokenDropped(_logger, context.Request.Path);
            return;
        }

        if (_options.UseCookie)
        {
            response.Cookies.Append(_options.Cookie.Name!, token, _options.Cookie.Build(context));
        }

        if (_options.UseHeader)
        {
            response.Headers[_options.HeaderName] = token;
        }

        Log.TokenWritten(_logger, context.Request.Path, _options.UseCookie, _options.UseHeader);
    }

    private enum TokenSource
    {
        None,
        Header,
        Cookie,
    }

    private sealed class TokenResponse(
        EfReplicaConsistencyMiddleware middleware,
        HttpContext context,
        EfReplicaConsistencyScope scope,
        string? requestToken,
        TokenSource source)
    {
        public Task WriteAsync() => middleware.WriteAsync(context, scope, requestToken, source);
    }
}

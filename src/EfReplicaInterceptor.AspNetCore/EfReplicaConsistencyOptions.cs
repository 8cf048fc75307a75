using Microsoft.AspNetCore.Http;

namespace EfReplicaInterceptor.AspNetCore;

/// <summary>
/// How <c>app.UseEfReplicaConsistency()</c> carries a user's consistency token from one request to the next: in a cookie
/// (browsers), in a header (API clients), or both. Set with <c>services.AddEfReplicaConsistency(options => ...)</c>;
/// checked when the application starts, and a bad value stops it with a message naming the setting.
/// </summary>
public sealed class EfReplicaConsistencyOptions
{
    /// <summary>The default cookie name, <c>efr-consistency</c>.</summary>
    public const string DefaultCookieName = "efr-consistency";

    /// <summary>The default header name, <c>EfReplica-Consistency</c>.</summary>
    public const string DefaultHeaderName = "EfReplica-Consistency";

    private CookieBuilder _cookie = new ConsistencyCookieBuilder();

    /// <summary>
    /// The cookie that carries the token. Defaults: name <see cref="DefaultCookieName"/>, path <c>/</c>, <c>HttpOnly</c>,
    /// <c>SameSite=Lax</c>, <c>Secure</c> when the request came over HTTPS (<see cref="CookieSecurePolicy.SameAsRequest"/>;
    /// behind a proxy that ends TLS, use the forwarded-headers middleware first), <c>Max-Age</c> 10 minutes counted from
    /// the last change of the token, and essential (written even without consent under the cookie policy middleware: it
    /// holds a database position, nothing about the user). <see cref="CookieBuilder.Expiration"/> is not supported: use
    /// <see cref="CookieBuilder.MaxAge"/>.
    /// </summary>
    public CookieBuilder Cookie
    {
        get => _cookie;
        set => _cookie = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary>
    /// The request header read for a token, and the response header the new token is written to whenever it changes.
    /// When a request carries both the header and the cookie, the header wins. Default: <see cref="DefaultHeaderName"/>.
    /// Browsers calling from another origin see the response header only when CORS exposes it (<c>WithExposedHeaders</c>).
    /// </summary>
    public string HeaderName { get; set; } = DefaultHeaderName;

    /// <summary>Whether the token is read from and written to <see cref="Cookie"/>. Default: <see langword="true"/>.</summary>
    public bool UseCookie { get; set; } = true;

    /// <summary>Whether the token is read from and written to the <see cref="HeaderName"/> header. Default: <see langword="true"/>.</summary>
    public bool UseHeader { get; set; } = true;

    /// <summary>
    /// What a malformed token, or one issued by another database cluster, does. A cookie or a header is client input, so by
    /// default it is ignored (the library logs event 1003, never the token) and the request reads as if it had brought none,
    /// the way ASP.NET Core treats an authentication cookie it cannot read; the response then tells the client to drop it.
    /// With <see cref="InvalidTokenHandling.Throw"/> the request's first read that needs the token throws
    /// <see cref="EfReplicaConsistencyTokenException"/>. This overrides the cluster's
    /// <see cref="EfReplicaOptions.InvalidTokenHandling"/> for request scopes only. Default: <see cref="InvalidTokenHandling.Ignore"/>.
    /// </summary>
    public InvalidTokenHandling InvalidTokenHandling { get; set; } = InvalidTokenHandling.Ignore;

    private sealed class ConsistencyCookieBuilder : CookieBuilder
    {
        public ConsistencyCookieBuilder()
        {
            Name = DefaultCookieName;
            Path = "/";
            HttpOnly = true;
            SameSite = SameSiteMode.Lax;
            SecurePolicy = CookieSecurePolicy.SameAsRequest;
            MaxAge = TimeSpan.FromMinutes(10);
            IsEssential = true;
        }

        public override TimeSpan? Expiration
        {
            get => null;
            set => throw new InvalidOperationException("EfReplicaConsistencyOptions.Cookie.Expiration is not supported: set Cookie.MaxAge instead.");
        }
    }
}

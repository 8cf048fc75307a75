using Microsoft.Extensions.Options;

namespace EfReplicaInterceptor.AspNetCore;

/// <summary>
/// Checks <see cref="EfReplicaConsistencyOptions"/> when the application starts: every problem at once, each naming the
/// setting, never its value.
/// </summary>
internal sealed class EfReplicaConsistencyOptionsValidator : IValidateOptions<EfReplicaConsistencyOptions>
{
    private const string Prefix = "EfReplicaConsistencyOptions.";

    public ValidateOptionsResult Validate(string? name, EfReplicaConsistencyOptions options)
    {
        var failures = new List<string>();
        if (!options.UseCookie && !options.UseHeader)
        {
            failures.Add($"{Prefix}UseCookie and {Prefix}UseHeader are both false: the token needs a cookie, a header or both.");
        }

        if (options.UseCookie && !IsToken(options.Cookie.Name ?? ""))
        {
            failures.Add($"{Prefix}Cookie.Name is not a valid cookie name (letters, digits and !#$%&'*+-.^_`|~ only).");
        }

        if (options.UseHeader && !IsToken(options.HeaderName ?? ""))
        {
            failures.Add($"{Prefix}HeaderName is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only).");
        }

        if (options.Cookie.MaxAge is { } maxAge && maxAge < TimeSpan.FromSeconds(1))
        {
            failures.Add($"{Prefix}Cookie.MaxAge must be at least one second (or null for a browser-session cookie).");
        }

        if (options.InvalidTokenHandling is not (InvalidTokenHandling.Throw or InvalidTokenHandling.Ignore))
        {
            failures.Add($"{Prefix}InvalidTokenHandling must be Throw or Ignore.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>An RFC 9110 token: what a header name and a cookie name must be.</summary>
    internal static bool IsToken(string value)
    {
        foreach (var c in value)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c, StringComparison.Ordinal)))
            {
                return false;
            }
        }

        return value.Length > 0;
    }
}

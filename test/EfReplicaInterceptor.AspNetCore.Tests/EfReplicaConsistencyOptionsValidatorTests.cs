using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace EfReplicaInterceptor.AspNetCore.Tests;

public sealed class EfReplicaConsistencyOptionsValidatorTests
{
    [Test]
    public void The_defaults_are_valid_and_are_the_documented_ones()
    {
        var options = new EfReplicaConsistencyOptions();

        var result = new EfReplicaConsistencyOptionsValidator().Validate(null, options);

        Assert.Multiple(() =>
        {
            Assert.That(result.Succeeded, Is.True, result.FailureMessage);
            Assert.That(options.Cookie.Name, Is.EqualTo("efr-consistency"));
            Assert.That(options.HeaderName, Is.EqualTo("EfReplica-Consistency"));
            Assert.That(options.Cookie.HttpOnly, Is.True);
            Assert.That(options.Cookie.SameSite, Is.EqualTo(SameSiteMode.Lax));
            Assert.That(options.Cookie.SecurePolicy, Is.EqualTo(CookieSecurePolicy.SameAsRequest));
            Assert.That(options.Cookie.MaxAge, Is.EqualTo(TimeSpan.FromMinutes(10)));
            Assert.That(options.InvalidTokenHandling, Is.EqualTo(InvalidTokenHandling.Ignore));
        });
    }

    [Test]
    public void Every_problem_is_named_by_its_setting_and_no_value_is_shown()
    {
        var options = new EfReplicaConsistencyOptions { HeaderName = "Bad Header:secret-value" };
        options.Cookie.Name = "bad cookie;secret-value";
        options.Cookie.MaxAge = TimeSpan.Zero;

        var result = new EfReplicaConsistencyOptionsValidator().Validate(null, options);

        Assert.Multiple(() =>
        {
            Assert.That(result.Failures, Has.Some.StartsWith("EfReplicaConsistencyOptions.Cookie.Name"));
            Assert.That(result.Failures, Has.Some.StartsWith("EfReplicaConsistencyOptions.HeaderName"));
            Assert.That(result.Failures, Has.Some.StartsWith("EfReplicaConsistencyOptions.Cookie.MaxAge"));
            Assert.That(result.FailureMessage, Does.Not.Contain("secret-value"));
        });
    }

    [Test]
    public void Neither_a_cookie_nor_a_header_is_refused()
    {
        var options = new EfReplicaConsistencyOptions { UseCookie = false, UseHeader = false };

        var result = new EfReplicaConsistencyOptionsValidator().Validate(null, options);

        Assert.That(result.Failures, Has.One.Contains("UseCookie and EfReplicaConsistencyOptions.UseHeader are both false"));
    }

    [Test]
    public void Expiration_is_refused_in_favour_of_max_age()
    {
        var options = new EfReplicaConsistencyOptions();

        Assert.That(() => options.Cookie.Expiration = TimeSpan.FromHours(1), Throws.InvalidOperationException.With.Message.Contains("Cookie.MaxAge"));
    }

    [Test]
    public void A_bad_setting_stops_the_host_at_start_up()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseSetting("urls", "http://127.0.0.1:0");
        builder.Services.AddEfReplicaConsistency(options => options.HeaderName = "not valid");
        using var app = builder.Build();
        app.UseEfReplicaConsistency();

        var error = Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());

        Assert.That(error!.Message, Does.Contain("EfReplicaConsistencyOptions.HeaderName"));
    }
}

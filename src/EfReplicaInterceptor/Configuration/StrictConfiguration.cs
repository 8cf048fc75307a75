using System.ComponentModel;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Configuration;

namespace EfReplicaInterceptor.Configuration;

/// <summary>
/// Binds a configuration section to an options type strictly. <c>ConfigurationBinder</c> alone ignores a misspelt key,
/// silently drops a list element it cannot convert (a replica whose <c>Weight</c> is <c>"heavy"</c> disappears) and, when
/// asked to be strict, throws on the first problem with a message that quotes the offending value (which may be a pasted
/// password). Here every key is checked against the options type first: each problem becomes a failure that names the
/// setting by its full path and never shows its value, and only the keys that passed are handed to the binder, so the binder
/// never sees a value it cannot convert and the remaining settings are still validated.
/// </summary>
internal static class StrictConfiguration
{
    /// <summary>Keys of a section that other registrations read (named clusters, tenants): not walked here, not refused.</summary>
    public static readonly IReadOnlyCollection<string> ClusterListKeys = ["Clusters", "Tenants", "Tenancy"];

    /// <summary>Every problem of <paramref name="section"/> read as <typeparamref name="T"/>, each naming its path.</summary>
    public static List<string> Check<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicProperties)] T>(
        IConfiguration section, IReadOnlyCollection<string>? otherKeys = null)
    {
        var failures = new List<string>();
        Walk(section, typeof(T), PathOf(section), string.Empty, otherKeys ?? [], failures, good: null);
        return failures;
    }

    /// <summary>
    /// Binds the settings of <paramref name="section"/> that can be read into <paramref name="target"/>; the others are left
    /// at their defaults (<see cref="Check{T}"/> reports them). Never throws because of a value.
    /// </summary>
    public static void Bind<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicProperties)] T>(
        IConfiguration section, T target, IReadOnlyCollection<string>? otherKeys = null)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(target);
        var good = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        Walk(section, typeof(T), PathOf(section), string.Empty, otherKeys ?? [], failures: null, good);
        new ConfigurationBuilder().AddInMemoryCollection(good).Build().Bind(target);
    }

    private static string PathOf(IConfiguration configuration) => configuration is IConfigurationSection section ? section.Path : string.Empty;

    private static string Join(string path, string key) => path.Length == 0 ? key : path + ":" + key;

    private static void Walk(IConfiguration section, Type type, string path, string relative, IReadOnlyCollection<string> otherKeys, List<string>? failures, Dictionary<string, string?>? good)
    {
        var properties = Settings(type);
        foreach (var child in section.GetChildren())
        {
            var childPath = Join(path, child.Key);
            var childRelative = Join(relative, child.Key);
            if (!properties.TryGetValue(child.Key, out var property))
            {
                if (!otherKeys.Contains(child.Key, StringComparer.OrdinalIgnoreCase))
                {
                    failures?.Add(UnknownSetting(childPath, path, child.Key, properties.Keys));
                }

                continue;
            }

            Value(child, property.PropertyType, childPath, childRelative, failures, good);
        }
    }

    private static void Value(IConfigurationSection section, Type type, string path, string relative, List<string>? failures, Dictionary<string, string?>? good)
    {
        var hasChildren = section.GetChildren().Any();
        if (ListItemType(type) is { } itemType)
        {
            if (!hasChildren)
            {
                // JSON's [] and null arrive as a key without a value: no items.
                if (!string.IsNullOrEmpty(section.Value))
                {
                    failures?.Add($"{path} must be a list (a JSON array), not a single value; the value is not shown.");
                }

                return;
            }

            foreach (var item in section.GetChildren())
            {
                var itemPath = Join(path, item.Key);
                var itemRelative = Join(relative, item.Key);
                var itemGood = good is null ? null : new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
                Value(item, itemType, itemPath, itemRelative, failures, itemGood);
                if (good is not null && itemGood is not null)
                {
                    if (itemGood.Count == 0)
                    {
                        // Keep the item's place (an empty item) so that the items after it keep their index, and so their
                        // names in messages; validation then reports what the empty item lacks.
                        itemGood[IsScalar(itemType) ? itemRelative : Join(itemRelative, Settings(itemType).Keys.First())] = IsScalar(itemType) ? string.Empty : null;
                    }

                    foreach (var (key, value) in itemGood)
                    {
                        good[key] = value;
                    }
                }
            }

            return;
        }

        if (IsScalar(type))
        {
            if (hasChildren)
            {
                failures?.Add($"{path} must be a single value, not a section.");
                return;
            }

            if (section.Value is null)
            {
                return;
            }

            if (TryConvert(section.Value, type))
            {
                good?.Add(relative, section.Value);
            }
            else
            {
                failures?.Add($"{path} could not be read as {Expected(type)}; the value is not shown.");
            }

            return;
        }

        if (!hasChildren)
        {
            if (!string.IsNullOrEmpty(section.Value))
            {
                failures?.Add($"{path} must be a section with settings ({string.Join(", ", Settings(type).Keys)}), not a single value; the value is not shown.");
            }

            return;
        }

        Walk(section, type, path, relative, [], failures, good);
    }

    private static string UnknownSetting(string childPath, string parentPath, string key, IEnumerable<string> known)
    {
        var names = known.ToArray();
        var closest = names.MinBy(name => Distance(name.ToUpperInvariant(), key.ToUpperInvariant()));
        var where = parentPath.Length == 0 ? "this section" : parentPath;
        return closest is not null && Distance(closest.ToUpperInvariant(), key.ToUpperInvariant()) <= Math.Max(2, closest.Length / 3)
            ? $"{childPath} is not a setting; did you mean {Join(parentPath, closest)}?"
            : $"{childPath} is not a setting of {where}; its settings are {string.Join(", ", names)}.";
    }

    private static bool TryConvert(string value, Type type)
    {
        var underlying = Nullable.GetUnderlyingType(type);
        if (underlying is not null)
        {
            if (value.Length == 0)
            {
                return true;
            }

            type = underlying;
        }

        if (type == typeof(string))
        {
            return true;
        }

        if (value.Length == 0)
        {
            return false;
        }

        try
        {
            return TypeDescriptor.GetConverter(type).ConvertFromInvariantString(value) is not null;
        }
        catch (Exception exception) when (exception is FormatException or ArgumentException or NotSupportedException or OverflowException or InvalidCastException)
        {
            return false;
        }
    }

    private static string Expected(Type type)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        if (type.IsEnum)
        {
            return $"one of {string.Join(", ", Enum.GetNames(type))}";
        }

        return type switch
        {
            _ when type == typeof(TimeSpan) => "a duration (hh:mm:ss, for example 00:00:05)",
            _ when type == typeof(int) || type == typeof(long) => "a whole number",
            _ when type == typeof(bool) => "true or false",
            _ => $"a {type.Name}",
        };
    }

    private static bool IsScalar(Type type)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        return type.IsPrimitive || type.IsEnum || type == typeof(string) || type == typeof(TimeSpan) || type == typeof(decimal);
    }

    private static Type? ListItemType(Type type)
        => type.IsGenericType && type.GetGenericTypeDefinition() is var definition
           && (definition == typeof(IList<>) || definition == typeof(List<>) || definition == typeof(ICollection<>) || definition == typeof(IEnumerable<>))
            ? type.GetGenericArguments()[0]
            : null;

    [UnconditionalSuppressMessage("Trimming", "IL2070", Justification = "The options types are the library's own and are kept.")]
    private static Dictionary<string, PropertyInfo> Settings(Type type)
    {
        var settings = new Dictionary<string, PropertyInfo>(StringComparer.OrdinalIgnoreCase);
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (property.GetMethod?.IsPublic == true && (property.SetMethod?.IsPublic == true || ListItemType(property.PropertyType) is not null))
            {
                settings[property.Name] = property;
            }
        }

        return settings;
    }

    /// <summary>Levenshtein distance, for "did you mean" (keys are short).</summary>
    internal static int Distance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }
}

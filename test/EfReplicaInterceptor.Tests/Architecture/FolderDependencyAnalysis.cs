using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace EfReplicaInterceptor.Tests.Architecture;

/// <summary>One source file: its path relative to the project folder ('/' separated) and its text.</summary>
internal sealed record SourceFile(string Path, string Text);

/// <summary>One place where a file uses a symbol declared in another folder.</summary>
internal sealed record SymbolUse(string File, int Line, string Symbol, string DeclaredIn)
{
    public override string ToString() => $"{File}:{Line} uses {Symbol} (declared in {DeclaredIn})";
}

/// <summary>Folder <see cref="From"/> uses folder <see cref="To"/> <see cref="Count"/> times; <see cref="Example"/> is the first use.</summary>
internal sealed record FolderEdge(string From, string To, int Count, SymbolUse Example)
{
    public override string ToString() => $"{From} -> {To}";
}

/// <summary>
/// Which top-level folder of a project uses which, from the C# semantic model rather than from <c>using</c> lines:
/// the unit is the folder a file sits in (a file at the project root is in <see cref="FolderDependencyAnalysis.RootUnit"/>),
/// whatever namespace it declares. A name is attributed to the file that declares the symbol it binds to,
/// so partial qualification (<c>Routing.X</c> from namespace <c>EfReplicaInterceptor.Topology</c>), types of the root
/// namespace that live in a folder, extension methods, <c>var</c> and target-typed <c>new()</c> all count.
/// </summary>
internal static class FolderDependencyAnalysis
{
    public const string RootUnit = "(root)";

    /// <summary>
    /// Errors that leave the semantic model intact: the [LoggerMessage] partial methods have no implementation
    /// because the source generator does not run here. Any other error may mean unresolved names, hence missing
    /// edges, so the analysis reports it rather than passing on a half-bound compilation.
    /// </summary>
    private static readonly ImmutableHashSet<string> ToleratedErrors = ImmutableHashSet.Create(
        StringComparer.Ordinal,
        "CS8795"); // Partial member must have an implementation part because it has accessibility modifiers.

    /// <summary>The implicit usings of Microsoft.NET.Sdk (ImplicitUsings=enable); they live in obj/, which is not read.</summary>
    private const string ImplicitGlobalUsings = """
        global using System;
        global using System.Collections.Generic;
        global using System.IO;
        global using System.Linq;
        global using System.Net.Http;
        global using System.Threading;
        global using System.Threading.Tasks;
        """;

    private static readonly SymbolDisplayFormat SymbolFormat = SymbolDisplayFormat.CSharpErrorMessageFormat
        .WithParameterOptions(SymbolDisplayParameterOptions.None)
        .WithMemberOptions(SymbolDisplayMemberOptions.IncludeContainingType)
        .WithGenericsOptions(SymbolDisplayGenericsOptions.IncludeTypeParameters);

    /// <summary>The unit of a project-relative path: its first folder, or <see cref="RootUnit"/> for a file at the top.</summary>
    public static string UnitOf(string path)
    {
        var slash = path.IndexOf('/', StringComparison.Ordinal);
        return slash < 0 ? RootUnit : path[..slash];
    }

    /// <summary>Every .cs file under <paramref name="projectDirectory"/>, bin/ and obj/ excluded, sorted by path.</summary>
    public static IReadOnlyList<SourceFile> ReadSources(string projectDirectory) =>
        Directory.EnumerateFiles(projectDirectory, "*.cs", SearchOption.AllDirectories)
            .Select(full => (full, relative: Path.GetRelativePath(projectDirectory, full).Replace('\\', '/')))
            .Where(f => !f.relative.Split('/').Any(segment => segment is "bin" or "obj"))
            .OrderBy(f => f.relative, StringComparer.Ordinal)
            .Select(f => new SourceFile(f.relative, File.ReadAllText(f.full)))
            .ToList();

    /// <summary>
    /// The assemblies the code under analysis can see: the runtime's trusted platform assemblies and every assembly
    /// loaded in this process (the test project references the library, so EF Core, Npgsql, Polly and
    /// Microsoft.Extensions.* are among them), minus the library's and the tests' own builds, whose types would
    /// otherwise compete with the sources. One reference per file name, first seen wins.
    /// </summary>
    public static IReadOnlyList<MetadataReference> ReferencesOfThisProcess()
    {
        var platform = ((string?)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);
        var loaded = AppDomain.CurrentDomain.GetAssemblies()
            .Where(a => !a.IsDynamic && !string.IsNullOrEmpty(a.Location))
            .Select(a => a.Location)
            .OrderBy(l => l, StringComparer.Ordinal);
        var byName = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var location in platform.Concat(loaded))
        {
            var name = Path.GetFileName(location);
            if (name.StartsWith("EfReplicaInterceptor", StringComparison.OrdinalIgnoreCase) || !File.Exists(location))
            {
                continue;
            }
            byName.TryAdd(name, location);
        }
        return byName.OrderBy(p => p.Key, StringComparer.OrdinalIgnoreCase)
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p.Value))
            .ToList();
    }

    /// <summary>Binds every name in <paramref name="sources"/> and returns the folder graph.</summary>
    public static FolderGraph Analyze(IReadOnlyList<SourceFile> sources, IReadOnlyList<MetadataReference> references, string assemblyName = "EfReplicaInterceptor")
    {
        // Nullable flow analysis changes no symbol a name binds to and was most of the semantic model's time: off.
        var parseOptions = new CSharpParseOptions(LanguageVersion.Latest)
            .WithFeatures([new KeyValuePair<string, string>("run-nullable-analysis", "never")]);
        var ordered = sources.OrderBy(s => s.Path, StringComparer.Ordinal).ToList();
        var trees = ordered.Select(s => CSharpSyntaxTree.ParseText(s.Text, parseOptions, s.Path)).ToList();
        var unitOfTree = trees.ToDictionary(t => t, t => UnitOf(t.FilePath));
        var globalUsings = CSharpSyntaxTree.ParseText(ImplicitGlobalUsings, parseOptions, "(implicit global usings)");

        var compilation = CSharpCompilation.Create(
            assemblyName,
            trees.Append(globalUsings),
            references,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));

        // Declaration errors (a signature naming a type the references lack) would hide edges; so would a name in a
        // body that binds to nothing, which the walk reports. Binding every body twice (GetDiagnostics, then the
        // semantic model) would double the test's time for nothing the walk does not already check.
        var problems = compilation.GetDeclarationDiagnostics()
            .Where(d => d.Severity == DiagnosticSeverity.Error && !ToleratedErrors.Contains(d.Id))
            .Select(d => d.ToString())
            .ToList();

        // Trees are walked in parallel and merged in path order, so the first use of an edge is the same every run.
        var walks = trees.AsParallel().AsOrdered()
            .Select(tree => Walk(tree, compilation.GetSemanticModel(tree), unitOfTree))
            .ToList();

        var edges = new SortedDictionary<(string From, string To), (int Count, SymbolUse Example)>(Comparer<(string, string)>.Create(CompareEdgeKeys));
        foreach (var (uses, unbound) in walks)
        {
            problems.AddRange(unbound);
            foreach (var (from, to, use) in uses)
            {
                edges[(from, to)] = edges.TryGetValue((from, to), out var existing)
                    ? (existing.Count + 1, existing.Example)
                    : (1, use);
            }
        }

        var units = unitOfTree.Values.Distinct().OrderBy(u => u, StringComparer.Ordinal).ToList();
        return new FolderGraph(
            units,
            edges.Select(e => new FolderEdge(e.Key.From, e.Key.To, e.Value.Count, e.Value.Example)).ToList(),
            problems);
    }

    /// <summary>The cross-folder uses in one file, in document order, and the names in it that bound to nothing.</summary>
    private static (List<(string From, string To, SymbolUse Use)> Uses, List<string> Unbound) Walk(
        SyntaxTree tree, SemanticModel model, IReadOnlyDictionary<SyntaxTree, string> unitOfTree)
    {
        var from = unitOfTree[tree];
        var uses = new List<(string, string, SymbolUse)>();
        var unbound = new List<string>();
        foreach (var node in tree.GetRoot().DescendantNodes())
        {
            var bound = false;
            foreach (var symbol in SymbolsUsedBy(node, model))
            {
                bound = true;
                var declaredIn = DeclaringFile(symbol, from, unitOfTree);
                if (declaredIn is null || unitOfTree[declaredIn] == from)
                {
                    continue;
                }
                var line = node.GetLocation().GetLineSpan().StartLinePosition.Line + 1;
                uses.Add((from, unitOfTree[declaredIn], new SymbolUse(tree.FilePath, line, symbol.ToDisplayString(SymbolFormat), declaredIn.FilePath)));
            }
            if (!bound && node is SimpleNameSyntax name && !MayBindToNothing(name))
            {
                var line = node.GetLocation().GetLineSpan().StartLinePosition.Line + 1;
                unbound.Add($"{tree.FilePath}:{line}: the name '{name}' binds to no symbol");
            }
        }
        return (uses, unbound);
    }

    /// <summary>Names that legitimately have no symbol: the <c>nameof</c> operator and the member names of anonymous types.</summary>
    private static bool MayBindToNothing(SimpleNameSyntax name) =>
        name.Identifier.ValueText == "nameof" && name.Parent is InvocationExpressionSyntax
        || name.Parent is NameEqualsSyntax { Parent: AnonymousObjectMemberDeclaratorSyntax };

    private static int CompareEdgeKeys((string From, string To) a, (string From, string To) b)
    {
        var byFrom = string.CompareOrdinal(a.From, b.From);
        return byFrom != 0 ? byFrom : string.CompareOrdinal(a.To, b.To);
    }

    /// <summary>
    /// The symbols a node names. Every simple name (identifier, generic name; qualified names and member accesses are
    /// made of them, and attributes and object creations name their type through one), plus the types that appear
    /// without being spelt: the type of <c>var</c> and of a target-typed <c>new()</c>.
    /// Documentation comments (<c>cref</c>) are trivia and are not walked: they document, they do not depend.
    /// </summary>
    private static IEnumerable<ISymbol> SymbolsUsedBy(SyntaxNode node, SemanticModel model)
    {
        switch (node)
        {
            case IdentifierNameSyntax { IsVar: true } var:
                foreach (var type in TypesWithin(model.GetTypeInfo(var).Type))
                {
                    yield return type;
                }
                break;
            case SimpleNameSyntax name:
                var info = model.GetSymbolInfo(name);
                if ((info.Symbol ?? info.CandidateSymbols.FirstOrDefault()) is { } symbol)
                {
                    yield return symbol;
                }
                break;
            case ImplicitObjectCreationExpressionSyntax creation:
                if (model.GetTypeInfo(creation).Type is { } created)
                {
                    yield return created;
                }
                break;
        }
    }

    /// <summary>A type and the types it is built from (array elements, generic arguments, tuple elements).</summary>
    private static IEnumerable<ITypeSymbol> TypesWithin(ITypeSymbol? type)
    {
        switch (type)
        {
            case null:
                yield break;
            case IArrayTypeSymbol array:
                foreach (var inner in TypesWithin(array.ElementType))
                {
                    yield return inner;
                }
                break;
            case INamedTypeSymbol named:
                yield return named;
                foreach (var argument in named.TypeArguments.SelectMany(TypesWithin))
                {
                    yield return argument;
                }
                break;
            default:
                yield return type;
                break;
        }
    }

    /// <summary>
    /// The analysed file that declares <paramref name="symbol"/>, or null when it is not declared in the analysed
    /// sources (framework and package symbols) or is local to the using file (locals, parameters, labels).
    /// Namespaces are not units. A member without a declaration of its own (an implicit constructor, a record's
    /// generated members) belongs to its type. A partial declared in several files is in the user's own folder if any
    /// part is, otherwise in the first part by path.
    /// </summary>
    private static SyntaxTree? DeclaringFile(ISymbol symbol, string fromUnit, IReadOnlyDictionary<SyntaxTree, string> unitOfTree)
    {
        symbol = symbol switch
        {
            IAliasSymbol alias => alias.Target,
            IMethodSymbol { ReducedFrom: { } extension } => extension,
            _ => symbol,
        };
        if (symbol is INamespaceSymbol or ILocalSymbol or IParameterSymbol or ILabelSymbol or IRangeVariableSymbol
            or IDiscardSymbol or ITypeParameterSymbol or IPreprocessingSymbol)
        {
            return null;
        }
        if (symbol is IArrayTypeSymbol array)
        {
            return DeclaringFile(array.ElementType, fromUnit, unitOfTree);
        }
        for (var current = symbol.OriginalDefinition; current is not null; current = current.ContainingType?.OriginalDefinition)
        {
            var files = current.DeclaringSyntaxReferences
                .Select(r => r.SyntaxTree)
                .Where(unitOfTree.ContainsKey)
                .Distinct()
                .OrderBy(t => t.FilePath, StringComparer.Ordinal)
                .ToList();
            if (files.Count > 0)
            {
                return files.FirstOrDefault(t => unitOfTree[t] == fromUnit) ?? files[0];
            }
            if (!current.IsImplicitlyDeclared && current.Locations.Any(l => l.IsInMetadata))
            {
                return null;
            }
        }
        return null;
    }
}

/// <summary>The folder graph: its units, its edges (sorted), and the compile errors and unbound names that may have hidden edges.</summary>
internal sealed class FolderGraph(IReadOnlyList<string> units, IReadOnlyList<FolderEdge> edges, IReadOnlyList<string> bindingProblems)
{
    public IReadOnlyList<string> Units { get; } = units;

    public IReadOnlyList<FolderEdge> Edges { get; } = edges;

    public IReadOnlyList<string> BindingProblems { get; } = bindingProblems;

    private ILookup<string, string> Successors => Edges.ToLookup(e => e.From, e => e.To);

    /// <summary>The strongly connected components with more than one unit (Tarjan), each sorted, in order of their first unit.</summary>
    public IReadOnlyList<IReadOnlyList<string>> TangledComponents()
    {
        var successors = Successors;
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        var low = new Dictionary<string, int>(StringComparer.Ordinal);
        var stack = new Stack<string>();
        var onStack = new HashSet<string>(StringComparer.Ordinal);
        var components = new List<IReadOnlyList<string>>();

        void Connect(string unit)
        {
            index[unit] = low[unit] = index.Count;
            stack.Push(unit);
            onStack.Add(unit);
            foreach (var next in successors[unit])
            {
                if (!index.ContainsKey(next))
                {
                    Connect(next);
                    low[unit] = Math.Min(low[unit], low[next]);
                }
                else if (onStack.Contains(next))
                {
                    low[unit] = Math.Min(low[unit], index[next]);
                }
            }
            if (low[unit] == index[unit])
            {
                var component = new List<string>();
                string popped;
                do
                {
                    popped = stack.Pop();
                    onStack.Remove(popped);
                    component.Add(popped);
                }
                while (popped != unit);
                if (component.Count > 1)
                {
                    components.Add(component.OrderBy(u => u, StringComparer.Ordinal).ToList());
                }
            }
        }

        foreach (var unit in Units.Where(u => !index.ContainsKey(u)))
        {
            Connect(unit);
        }
        return components.OrderBy(c => c[0], StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// Every elementary cycle, each starting at its smallest unit, shortest first; at most <paramref name="limit"/>
    /// are enumerated (a dense tangle has very many), <paramref name="complete"/> says whether that was all of them.
    /// </summary>
    public IReadOnlyList<IReadOnlyList<string>> Cycles(int limit, out bool complete)
    {
        var successors = Edges.GroupBy(e => e.From)
            .ToDictionary(g => g.Key, g => g.Select(e => e.To).OrderBy(u => u, StringComparer.Ordinal).ToList(), StringComparer.Ordinal);
        var cycles = new List<IReadOnlyList<string>>();
        var path = new List<string>();
        var onPath = new HashSet<string>(StringComparer.Ordinal);
        var stopped = false;

        void Walk(string start, string unit)
        {
            path.Add(unit);
            onPath.Add(unit);
            foreach (var next in successors.GetValueOrDefault(unit) ?? [])
            {
                if (stopped)
                {
                    break;
                }
                if (next == start)
                {
                    cycles.Add([.. path]);
                    stopped = cycles.Count >= limit;
                }
                else if (string.CompareOrdinal(next, start) > 0 && !onPath.Contains(next))
                {
                    Walk(start, next);
                }
            }
            path.RemoveAt(path.Count - 1);
            onPath.Remove(unit);
        }

        foreach (var start in Units)
        {
            if (stopped)
            {
                break;
            }
            Walk(start, start);
        }
        complete = !stopped;
        return cycles
            .OrderBy(c => c.Count)
            .ThenBy(c => string.Join(" -> ", c), StringComparer.Ordinal)
            .ToList();
    }

    public FolderEdge Edge(string from, string to) => Edges.Single(e => e.From == from && e.To == to);

    /// <summary>The graph as sorted arrows, one per line, with the number of uses and the first one.</summary>
    public string DescribeEdges()
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"Folder graph: {Units.Count} units, {Edges.Count} edges\n");
        text.Append(CultureInfo.InvariantCulture, $"Units: {string.Join(", ", Units)}\n");
        foreach (var edge in Edges)
        {
            text.Append(CultureInfo.InvariantCulture, $"  {edge.From} -> {edge.To}  [{edge.Count} uses] e.g. {edge.Example}\n");
        }
        return text.ToString();
    }

    /// <summary>The tangles and every cycle (up to <paramref name="limit"/>) with the example use behind each arrow; empty when acyclic.</summary>
    public string DescribeCycles(int limit = 200)
    {
        var components = TangledComponents();
        if (components.Count == 0)
        {
            return "";
        }
        var text = new StringBuilder();
        foreach (var component in components)
        {
            var members = component.ToHashSet(StringComparer.Ordinal);
            text.Append(CultureInfo.InvariantCulture, $"Folders that depend on each other (strongly connected): {string.Join(", ", component)}\n");
            text.Append("  Arrows inside it; each cycle below is made of some of them, removing the uses of an arrow breaks every cycle through it:\n");
            foreach (var edge in Edges.Where(e => members.Contains(e.From) && members.Contains(e.To)))
            {
                var back = Edges.Any(e => e.From == edge.To && e.To == edge.From) ? "  (mutual)" : "";
                text.Append(CultureInfo.InvariantCulture, $"    {edge.From} -> {edge.To}  [{edge.Count} uses]{back} e.g. {edge.Example}\n");
            }
        }
        var cycles = Cycles(limit, out var complete);
        text.Append(CultureInfo.InvariantCulture, $"{(complete ? "" : "At least ")}{cycles.Count} cycles:\n");
        var number = 0;
        foreach (var cycle in cycles)
        {
            number++;
            text.Append(CultureInfo.InvariantCulture, $"  Cycle {number}: {string.Join(" -> ", cycle)} -> {cycle[0]}\n");
            for (var i = 0; i < cycle.Count; i++)
            {
                var edge = Edge(cycle[i], cycle[(i + 1) % cycle.Count]);
                text.Append(CultureInfo.InvariantCulture, $"      {edge.From} -> {edge.To}: {edge.Example}\n");
            }
        }
        return text.ToString();
    }
}

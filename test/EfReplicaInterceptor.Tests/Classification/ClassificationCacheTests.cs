using System.Runtime.CompilerServices;

namespace EfReplicaInterceptor.Tests.Classification;

public sealed class ClassificationCacheTests
{
    private static readonly SqlClassification Read = SqlClassification.PlainRead;
    private static readonly SqlClassification Write = SqlClassification.NeedsPrimary(RoutingReason.WriteStatement);

    [Test]
    public void A_hit_is_only_ever_the_same_string_instance()
    {
        var cache = new ClassificationCache();
        var text = "SELECT 1";
        cache.Add(text, Read);
        var equalCopy = new string(text.AsSpan());
        Assert.Multiple(() =>
        {
            Assert.That(cache.TryGet(text, out var hit), Is.True);
            Assert.That(hit, Is.EqualTo(Read));
            Assert.That(cache.TryGet(equalCopy, out _), Is.False, "equal content, different instance");
        });
    }

    [Test]
    public void Every_hit_is_the_classification_stored_for_that_instance()
    {
        var cache = new ClassificationCache();
        var texts = Enumerable.Range(0, ClassificationCache.Capacity * 8).Select(i => $"SELECT {i}").ToArray();
        for (var i = 0; i < texts.Length; i++)
        {
            cache.Add(texts[i], i % 2 == 0 ? Read : Write);
        }

        var hits = 0;
        for (var i = 0; i < texts.Length; i++)
        {
            if (cache.TryGet(texts[i], out var classification))
            {
                hits++;
                Assert.That(classification, Is.EqualTo(i % 2 == 0 ? Read : Write), texts[i]);
            }
        }

        Assert.That(hits, Is.InRange(ClassificationCache.Capacity / 2, ClassificationCache.Capacity), "bounded, and mostly full");
    }

    [Test]
    public void Long_texts_are_not_cached()
    {
        var cache = new ClassificationCache();
        var text = "SELECT " + new string('1', ClassificationCache.MaxCachedLength);
        cache.Add(text, Read);
        Assert.That(cache.TryGet(text, out _), Is.False);
    }

    [Test]
    public void Evicted_texts_are_not_kept_alive()
    {
        var cache = new ClassificationCache();
        var weak = AddAndForget(cache);
        for (var i = 0; i < ClassificationCache.Capacity * 64; i++)
        {
            cache.Add($"SELECT {i}", Read);
        }

        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        Assert.That(weak.IsAlive, Is.False);
    }

    [Test]
    public void Concurrent_use_never_returns_another_texts_classification()
    {
        var classifier = new SqlClassifier();
        var texts = Enumerable.Range(0, 5_000)
            .Select(i => (i % 3) switch
            {
                0 => $"SELECT {i} FROM t",
                1 => $"DELETE FROM t WHERE id = {i}",
                _ => $"SELECT * FROM t WHERE id = {i} FOR UPDATE",
            })
            .ToArray();
        var expected = texts.Select(classifier.Classify).ToArray();
        var failures = 0;
        Parallel.For(0, 400_000, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(4, Environment.ProcessorCount) }, i =>
        {
            var index = (int)((uint)(i * 2_654_435_761L) % (uint)texts.Length);
            if (classifier.ClassifyCached(texts[index]) != expected[index])
            {
                Interlocked.Increment(ref failures);
            }
        });
        Assert.That(failures, Is.Zero);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference AddAndForget(ClassificationCache cache)
    {
        var text = new string('x', 100);
        cache.Add(text, Read);
        Assert.That(cache.TryGet(text, out _), Is.True);
        return new WeakReference(text);
    }
}

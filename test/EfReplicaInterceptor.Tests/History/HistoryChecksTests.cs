using EfReplicaInterceptor.HistoryChecker;

namespace EfReplicaInterceptor.Tests.History;

/// <summary>The checker on hand-made histories: each guarantee's violation is found, with its operations, and nothing else is.</summary>
public sealed class HistoryChecksTests
{
    private long _id;

    [Test]
    public void A_clean_sequential_history_passes()
    {
        var history = new[]
        {
            Write("a", ("k:a", 1), 0, 1),
            Read("a", ("k:a", 1), ("c", 4), 2, 3),
            Write("a", ("k:a", 2), ("c", 7), 4, 5),
            Read("a", ("k:a", 2), ("c", 7), 6, 7),
            Read("a", ("k:a", 2), ("c", 9), 8, 9),
        };

        var result = HistoryChecks.Check(history);

        Assert.Multiple(() =>
        {
            Assert.That(result.IsValid, Is.True, result.Describe());
            Assert.That((result.Operations, result.Writes, result.Reads, result.Failed), Is.EqualTo((5, 2, 3, 0)));
        });
    }

    [Test]
    public void A_read_older_than_the_scopes_completed_write_breaks_read_your_writes()
    {
        var write = Write("lease:1", ("k:1", 2), 10, 12);
        var read = Read("lease:1", ("k:1", 1), 13, 14);

        var result = HistoryChecks.Check([Write("lease:1", ("k:1", 1), 0, 1), write, read]);

        Assert.That(result.Violations, Has.Count.EqualTo(1));
        var violation = result.Violations[0];
        Assert.Multiple(() =>
        {
            Assert.That(violation.Kind, Is.EqualTo(ViolationKind.ReadYourWrites));
            Assert.That((violation.Scope, violation.Register), Is.EqualTo(("lease:1", "k:1")));
            Assert.That(violation.Earlier, Is.SameAs(write));
            Assert.That(violation.Read, Is.SameAs(read));
            Assert.That((violation.EarlierValue, violation.ReadValue), Is.EqualTo((2L, 1L)));
            Assert.That(violation.Gap, Is.EqualTo(TimeSpan.FromMilliseconds(1)));
            Assert.That(violation.ToString(), Does.Contain("read-your-writes").And.Contain("lease:1").And.Contain($"#{write.Id}").And.Contain($"#{read.Id}"));
            Assert.That(result.MonotonicReadsViolations, Is.Zero, "the scope never read 2, so its reads did not go backwards");
        });
    }

    [Test]
    public void A_register_not_there_yet_reads_as_zero_and_misses_the_first_write()
    {
        var result = HistoryChecks.Check([Write("u", ("k:u", 1), 0, 1), Read("u", ("k:u", 0), 2, 3)]);

        Assert.That(result.Violations.Select(v => v.Kind), Is.EqualTo(new[] { ViolationKind.ReadYourWrites }));
    }

    [Test]
    public void A_read_older_than_an_earlier_read_of_the_scope_breaks_monotonic_reads()
    {
        var first = Read("ambient:3", ("c", 9), 0, 1);
        var second = Read("ambient:3", ("c", 5), 2, 3);

        var result = HistoryChecks.Check([first, second]);

        Assert.That(result.Violations, Has.Count.EqualTo(1));
        var violation = result.Violations[0];
        Assert.Multiple(() =>
        {
            Assert.That(violation.Kind, Is.EqualTo(ViolationKind.MonotonicReads));
            Assert.That(violation.Earlier, Is.SameAs(first));
            Assert.That(violation.Read, Is.SameAs(second));
            Assert.That((violation.EarlierValue, violation.ReadValue), Is.EqualTo((9L, 5L)));
            Assert.That(violation.ToString(), Does.StartWith("monotonic reads: scope ambient:3, register c"));
        });
    }

    [Test]
    public void A_read_that_overlaps_the_write_may_miss_it()
    {
        // The read started before the write returned: they are concurrent, either order is allowed.
        var result = HistoryChecks.Check([Write("a", ("k", 1), 0, 10), Read("a", ("k", 0), 5, 6), Read("a", ("k", 0), 9, 11)]);

        Assert.That(result.IsValid, Is.True, result.Describe());
    }

    [Test]
    public void An_operation_that_ends_exactly_when_the_read_starts_is_not_before_it()
    {
        var result = HistoryChecks.Check([Write("a", ("k", 1), 0, 5), Read("a", ("k", 3), 6, 7), Read("a", ("k", 0), 5, 6)]);

        Assert.That(result.IsValid, Is.True, "the clock cannot order operations that share an instant; " + result.Describe());
    }

    [Test]
    public void Reads_that_overlap_each_other_are_not_ordered()
    {
        var result = HistoryChecks.Check([Read("a", ("c", 8), 0, 10), Read("a", ("c", 3), 2, 4), Read("a", ("c", 8), 11, 12), Read("a", ("c", 8), 3, 20)]);

        Assert.That(result.IsValid, Is.True, result.Describe());
    }

    [Test]
    public void Another_scopes_writes_and_reads_constrain_nothing()
    {
        var result = HistoryChecks.Check([Write("other", ("c", 5), 0, 1), Read("other", ("c", 5), 2, 3), Read("mine", ("c", 1), 4, 5)]);

        Assert.That(result.IsValid, Is.True, "session guarantees are per scope: " + result.Describe());
    }

    [Test]
    public void Registers_are_checked_each_on_its_own()
    {
        var result = HistoryChecks.Check([Read("a", ("x", 9), ("y", 1), 0, 1), Read("a", ("x", 9), ("y", 2), 2, 3), Read("a", ("y", 3), ("x", 10), 4, 5)]);

        Assert.That(result.IsValid, Is.True, result.Describe());
    }

    [Test]
    public void Failed_operations_set_no_expectation_and_are_not_judged()
    {
        var history = new[]
        {
            Write("a", ("k", 3), 0, 1, OperationOutcome.Failed), // maybe applied, maybe not
            Read("a", ("k", 0), 2, 3),
            Read("a", ("k", 9), 4, 5, OperationOutcome.Failed),
            Read("a", ("k", 0), 6, 7),
        };

        var result = HistoryChecks.Check(history);

        Assert.Multiple(() =>
        {
            Assert.That(result.IsValid, Is.True, result.Describe());
            Assert.That((result.Failed, result.Reads, result.Writes), Is.EqualTo((2, 2, 0)));
        });
    }

    [Test]
    public void The_witness_is_the_highest_earlier_value_not_the_latest()
    {
        var high = Read("a", ("c", 7), 0, 1);
        var result = HistoryChecks.Check([high, Read("a", ("c", 7), 2, 3), Read("a", ("c", 4), 4, 5)]);

        Assert.Multiple(() =>
        {
            Assert.That(result.Violations, Has.Count.EqualTo(1));
            Assert.That(result.Violations[0].EarlierValue, Is.EqualTo(7));
        });

        var writeFive = Write("b", ("c", 5), 0, 1);
        var written = HistoryChecks.Check([writeFive, Write("b", ("c", 2), 1.5, 2), Read("b", ("c", 3), 3, 4)]);
        Assert.That(written.Violations.Single().Earlier, Is.SameAs(writeFive), "a register only grows: the highest completed write is the floor");
    }

    [Test]
    public void One_read_can_break_both_guarantees_and_counts_once_as_a_bad_read()
    {
        var result = HistoryChecks.Check([Write("a", ("c", 5), 0, 1), Read("a", ("c", 6), 2, 3), Read("a", ("c", 4), 4, 5)]);

        Assert.Multiple(() =>
        {
            Assert.That(result.ReadYourWritesViolations, Is.EqualTo(1));
            Assert.That(result.MonotonicReadsViolations, Is.EqualTo(1));
            Assert.That(result.BadReads, Is.EqualTo(1));
            Assert.That(result.Describe(), Does.Contain("1 read-your-writes and 1 monotonic-reads violations in 1 reads"));
        });
    }

    [Test]
    public void Every_later_read_below_the_floor_is_reported()
    {
        var result = HistoryChecks.Check([Write("a", ("k", 2), 0, 1), Read("a", ("k", 1), 2, 3), Read("a", ("k", 1), 4, 5), Read("a", ("k", 2), 6, 7)]);

        Assert.That(result.Violations.Select(v => (v.Kind, v.Read.Start.TotalMilliseconds)), Is.EqualTo(new[]
        {
            (ViolationKind.ReadYourWrites, 2.0),
            (ViolationKind.ReadYourWrites, 4.0),
        }));
    }

    [Test]
    public void An_operation_that_ends_before_it_starts_is_refused()
    {
        var error = Assert.Throws<ArgumentException>(() => HistoryChecks.Check([Read("a", ("k", 1), 5, 4)]));

        Assert.That(error!.Message, Does.Contain("ends before it starts"));
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public void Random_concurrent_histories_that_keep_the_guarantees_pass_and_one_stale_read_is_found(int seed)
    {
        var random = new Random(seed);
        var history = ValidHistory(random, scopes: 8, operationsPerScope: 200);
        Assert.That(HistoryChecks.Check(history).IsValid, Is.True, "a history built to keep both guarantees must pass");

        // Pick a read that has an earlier completed operation of its scope with a positive value, and make it return less.
        var victim = history
            .Where(o => o.Kind == OperationKind.Read)
            .First(o => history.Any(e => e.Scope == o.Scope && e.End < o.Start && e.Values.TryGetValue("c0", out var v) && v > 0 && o.Values.ContainsKey("c0")));
        var broken = history.Select(o => o == victim ? o with { Values = new Dictionary<string, long>(o.Values) { ["c0"] = 0 } } : o).ToList();

        var result = HistoryChecks.Check(broken);

        Assert.That(result.Violations.Select(v => v.Read.Id).Distinct(), Is.EqualTo(new[] { victim.Id }), result.Describe());
    }

    /// <summary>
    /// Scopes run concurrently (interleaved in time); registers c0..c2 are shared counters, k:scope a scope's own. Each read
    /// returns at least the scope's floor, and a random amount more, never more than was ever written.
    /// </summary>
    private List<Operation> ValidHistory(Random random, int scopes, int operationsPerScope)
    {
        var operations = new List<Operation>();
        var counters = new long[3];
        var clocks = new double[scopes];
        var floors = Enumerable.Range(0, scopes).Select(_ => new Dictionary<string, long>()).ToArray();
        var versions = new long[scopes];
        var written = new Dictionary<string, long>();
        for (var step = 0; step < scopes * operationsPerScope; step++)
        {
            var s = random.Next(scopes);
            var scope = $"s{s}";
            var start = clocks[s] + random.NextDouble();
            var end = start + random.NextDouble() * 3;
            clocks[s] = end;
            Dictionary<string, long> values;
            OperationKind kind;
            if (random.Next(3) == 0)
            {
                kind = OperationKind.Write;
                var c = random.Next(counters.Length);
                values = new Dictionary<string, long> { [$"k:{scope}"] = ++versions[s], [$"c{c}"] = ++counters[c] };
                written[$"k:{scope}"] = versions[s];
                written[$"c{c}"] = counters[c];
            }
            else
            {
                kind = OperationKind.Read;
                values = [];
                foreach (var register in new[] { $"k:{scope}", "c0", "c1", "c2" })
                {
                    var floor = floors[s].GetValueOrDefault(register);
                    var top = written.GetValueOrDefault(register);
                    values[register] = floor + (top > floor ? random.NextInt64(top - floor + 1) : 0);
                }
            }

            foreach (var (register, value) in values)
            {
                floors[s][register] = Math.Max(floors[s].GetValueOrDefault(register), value);
            }

            operations.Add(new Operation(++_id, scope, kind, values, TimeSpan.FromMilliseconds(start), TimeSpan.FromMilliseconds(end)));
        }

        return operations;
    }

    private Operation Write(string scope, (string Register, long Value) first, double start, double end, OperationOutcome outcome = OperationOutcome.Ok)
        => Op(scope, OperationKind.Write, [first], start, end, outcome);

    private Operation Write(string scope, (string Register, long Value) first, (string Register, long Value) second, double start, double end)
        => Op(scope, OperationKind.Write, [first, second], start, end, OperationOutcome.Ok);

    private Operation Read(string scope, (string Register, long Value) first, double start, double end, OperationOutcome outcome = OperationOutcome.Ok)
        => Op(scope, OperationKind.Read, [first], start, end, outcome);

    private Operation Read(string scope, (string Register, long Value) first, (string Register, long Value) second, double start, double end)
        => Op(scope, OperationKind.Read, [first, second], start, end, OperationOutcome.Ok);

    private Operation Op(string scope, OperationKind kind, (string Register, long Value)[] values, double start, double end, OperationOutcome outcome)
        => new(++_id, scope, kind, values.ToDictionary(v => v.Register, v => v.Value), TimeSpan.FromMilliseconds(start), TimeSpan.FromMilliseconds(end), outcome, "test");
}

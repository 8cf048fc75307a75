using EfReplicaInterceptor.Testing;

namespace EfReplicaInterceptor.IntegrationTests.Patroni;

/// <summary>
/// The scenarios that need the library to learn membership while it runs: the Patroni topology source
/// (<see cref="EfReplicaOptions.Topology"/>, <c>Replicas</c> empty, Patroni's REST API listed) sees a fourth member added and a
/// member tagged <c>noloadbalance</c>.
/// </summary>
public sealed partial class PatroniScenarioTests
{
    [Test, Order(6)]
    public async Task A_fourth_member_added_under_the_Patroni_source_takes_reads_within_two_probe_rounds_of_streaming()
    {
        await using var library = await Library.CreateAsync(_patroni, configure: UsePatroniSource);
        await WaitForAsync(() => library.Cluster.Replicas.Count(r => r.IsAdmitted) >= 2 ? true : (bool?)null, TimeSpan.FromSeconds(10), "the Patroni source's replicas in rotation");
        var load = PatroniLoad.Start(library.Cluster, _nextSeq);
        await WaitForReadsAsync(load, 300, TimeSpan.FromSeconds(30));

        var added = await _patroni.AddMemberAsync();
        var streamingAt = load.Now;
        var roundsAtStreaming = library.Cluster.Monitor.Rounds;
        var firstRead = await WaitForAsync(
            () => load.ReadRecords.Where(r => r.Start >= streamingAt && r.Result?.Port == added.Port).Select(r => (TimeSpan?)r.End).Min(),
            TimeSpan.FromSeconds(20),
            $"a read on {added.Name}",
            required: false);
        var rounds = library.Cluster.Monitor.Rounds - roundsAtStreaming;
        await WaitForReadsAsync(load, load.ReadRecords.Count + 200, TimeSpan.FromSeconds(30));
        await load.StopAsync();

        var leader = await _patroni.WaitForLeaderAsync();
        var report = await Finish(load, leader, library.Options.MaxReplicaLag);
        Report($"{added.Name} added; first read on it {Ms(firstRead == TimeSpan.Zero ? null : firstRead - streamingAt)} and about {rounds} probe rounds after Patroni reported it streaming");
        Report(report.Describe());
        Report(library.Events());

        Assert.Multiple(() =>
        {
            Assert.That(firstRead, Is.Not.EqualTo(TimeSpan.Zero), $"reads reach {added.Name} without a restart");
            Assert.That(rounds, Is.LessThanOrEqualTo(2), "within two probe rounds of it streaming");
            Assert.That(report.FailedReads.Select(r => r.Error), Is.Empty, "0 reads failed to the caller");
            Assert.That(report.StaleReads, Is.Empty, "no read older than the lag budget");
        });
    }

    [Test, Order(7)]
    public async Task A_member_tagged_noloadbalance_under_the_Patroni_source_gets_no_read()
    {
        await using var library = await Library.CreateAsync(_patroni, configure: UsePatroniSource);
        var leader = await _patroni.WaitForLeaderAsync();
        var tagged = _patroni.Members.First(member => member.Name != leader.Name && member.IsRunning);
        var load = PatroniLoad.Start(library.Cluster, _nextSeq);
        await WaitForReadsAsync(load, 300, TimeSpan.FromSeconds(30));
        var readsOnItBefore = load.ReadRecords.Count(r => r.Result?.Port == tagged.Port);

        await _patroni.SetNoLoadBalanceAsync(tagged.Name, true);
        try
        {
            // Patroni shows the tag: from the source's next poll (one interval) and the reads then in flight, none reaches it.
            var taggedAt = load.Now;
            var after = taggedAt + ProbeInterval * 2 + TimeSpan.FromSeconds(1);
            await WaitForAsync(() => load.Now >= after ? true : (bool?)null, TimeSpan.FromSeconds(30), "the source to see the tag");
            var countFrom = load.Now;
            await WaitForReadsAsync(load, load.ReadRecords.Count + 1000, TimeSpan.FromSeconds(30));
            await load.StopAsync();
            var report = await Finish(load, leader, library.Options.MaxReplicaLag);
            var onTagged = load.ReadRecords.Count(r => r.Start >= countFrom && !r.ReadBack && r.Result?.Port == tagged.Port);
            var counted = load.ReadRecords.Count(r => r.Start >= countFrom && !r.ReadBack && r.Result is not null);
            Report($"{tagged.Name} tagged noloadbalance at {taggedAt.TotalSeconds:0.00} s: {readsOnItBefore} reads on it before; {onTagged} of {counted} readers' reads on it from {countFrom.TotalSeconds:0.00} s");
            Report(report.Describe());
            Report(library.Events());

            Assert.Multiple(() =>
            {
                Assert.That(readsOnItBefore, Is.Positive, "it took reads before the tag, or the test proves nothing");
                Assert.That(onTagged, Is.Zero, "a member tagged noloadbalance gets no reads");
                Assert.That(report.FailedReads.Select(r => r.Error), Is.Empty, "0 reads failed to the caller");
            });
        }
        finally
        {
            await _patroni.SetNoLoadBalanceAsync(tagged.Name, false);
        }
    }

    /// <summary>The replicas from Patroni's REST API (every member's address) instead of a list.</summary>
    private void UsePatroniSource(EfReplicaOptions options)
    {
        options.Replicas.Clear();
        foreach (var endpoint in _patroni.RestApiEndpoints)
        {
            options.Topology.Patroni.Endpoints.Add(endpoint.ToString());
        }
    }
}

using EfReplicaInterceptor.Testing;

namespace EfReplicaInterceptor.IntegrationTests.Harness;

[Parallelizable(ParallelScope.Fixtures)]
public sealed class PostgresBinariesTests
{
    [Test]
    public void Locate_returns_a_folder_with_every_server_program()
    {
        var folder = PostgresBinaries.Locate();

        Assert.That(Path.IsPathRooted(folder), Is.True, folder);
        foreach (var program in new[] { "initdb", "pg_ctl", "postgres", "pg_basebackup" })
        {
            Assert.That(File.Exists(Path.Combine(folder, program)), Is.True, $"{program} in {folder}");
        }
    }

    [Test]
    public void Locate_honours_EFREPLICA_PG_BIN_and_rejects_a_folder_without_the_programs()
    {
        var real = PostgresBinaries.Locate();
        var empty = Directory.CreateTempSubdirectory("efreplica-no-pg-").FullName;
        try
        {
            Assert.That(PostgresBinaries.Locate(name => name == PostgresBinaries.EnvironmentVariable ? real : null), Is.EqualTo(real));

            var exception = Assert.Throws<PostgresBinariesNotFoundException>(
                () => PostgresBinaries.Locate(name => name == PostgresBinaries.EnvironmentVariable ? empty : null));
            Assert.That(exception!.Message, Does.Contain("EFREPLICA_PG_BIN").And.Contain(empty).And.Contain("pg_basebackup"));
        }
        finally
        {
            Directory.Delete(empty);
        }
    }

    [Test]
    public void Not_found_message_says_how_to_install_PostgreSQL()
    {
        var message = new PostgresBinariesNotFoundException().Message;

        Assert.That(
            message,
            Does.Contain("sudo apt-get install -y postgresql").And.Contain("EFREPLICA_PG_BIN").And.Contain("build/test.sh"));
    }
}

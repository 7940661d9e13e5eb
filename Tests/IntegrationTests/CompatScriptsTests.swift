import BackstopCore
import BackstopTestSupport
import Foundation
import Testing

/// The old service's script names (`scripts/compat/`, installed as /scripts/*.sh in the image)
/// still work from cron lines and runbooks: same arguments, same environment, same files.
@Suite("The old scripts' names", .serialized)
struct CompatScriptsTests {
    static let compat = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("scripts/compat").path

    /// Runs `scripts/compat/NAME ARGS` with the built binary as `backstop`.
    static func script(_ name: String, _ arguments: [String] = [], environment: [String: String]) throws -> CommandResult {
        var env = environment
        env["BACKSTOP"] = try BackstopBinary.path()
        return try TestProcesses.run("/bin/sh", [compat + "/" + name] + arguments, environment: env, check: false)
    }

    @Test func backupListRestoreListingCleanupAndHealthThroughTheOldNames() throws {
        let pg = try PostgresServer.shared
        let database = try pg.createDatabase(PostgresServer.uniqueDatabaseName("compat"))
        try pg.psql("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 10);", database: database)
        let redis = try StandaloneRedis()
        defer { redis.stop() }
        _ = try redis.cli(["SET", "k", "v"])
        let backupDir = try TestEnvironment.makeTempDirectory("compat") + "/backups"
        var env = pg.environment(database: database)
        env["BACKUP_DIR"] = backupDir
        env["BACKUP_POSTGRES_BIN"] = pg.binDirectory
        env["REDIS_HOST"] = "127.0.0.1"
        env["REDIS_PORT"] = String(redis.port)

        let full = try Self.script("postgres-backup.sh", ["full"], environment: env)
        #expect(full.status == 0, "\(full.stderr)")
        let dumps = try FileManager.default.contentsOfDirectory(atPath: backupDir + "/postgres")
        #expect(dumps.contains { $0.hasPrefix("\(database)_full_") && $0.hasSuffix(".sql.gz") }, "\(dumps)")
        #expect(dumps.contains { $0.hasSuffix(".sql.gz.meta") })

        let bad = try Self.script("postgres-backup.sh", ["weekly"], environment: env)
        #expect(bad.status == 2 && bad.stderr.contains("\"weekly\"") && bad.stderr.contains("full, incremental"), "\(bad.stderr)")

        let snapshot = try Self.script("redis-backup.sh", environment: env)
        #expect(snapshot.status == 0, "\(snapshot.stderr)")
        let snapshots = try FileManager.default.contentsOfDirectory(atPath: backupDir + "/redis")
        #expect(snapshots.contains { $0.hasPrefix("redis_") && $0.hasSuffix(".rdb.gz") }, "\(snapshots)")

        // Without a file, the restore scripts list what can be restored and exit 0, as before.
        let listing = try Self.script("restore-postgres.sh", environment: env)
        #expect(listing.status == 0, "\(listing.stderr)")
        #expect(listing.stdout.contains("\(database)_full_"), "\(listing.stdout)")
        let redisListing = try Self.script("restore-redis.sh", environment: env)
        #expect(redisListing.status == 0 && redisListing.stdout.contains("redis_"), "\(redisListing.stdout)\(redisListing.stderr)")

        let cleanup = try Self.script("cleanup-backups.sh", environment: env)
        #expect(cleanup.status == 0, "\(cleanup.stderr)")
        let stamp = String(WallClock.fileStamp(WallClock.now()).prefix(8))
        #expect(FileManager.default.fileExists(atPath: backupDir + "/backup_inventory_\(stamp).txt"))

        // health-check.sh answers with backstop health's exit code: Redis reachable, PostgreSQL
        // reachable, backups fresh; it fails once Redis is gone.
        redis.stop()
        try TestEnvironment.waitUntil(timeout: 10, "redis to stop") { !TestEnvironment.isListening(port: redis.port) }
        let health = try Self.script("health-check.sh", environment: env)
        #expect(health.status == 1 && health.stdout.contains("DOWN"), "\(health.stdout)")
    }
}

import BackstopCore
import BackstopTestSupport
import BackupCatalog
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The world changing under a running job, through the built binary against real servers: the
/// backup volume filling up and PostgreSQL restarting while `pg_dump` streams. Each must end
/// in a clear error, the BackupFailed alert, nothing partial that looks complete, the backups
/// already there untouched, and a normal next run once the fault is gone.
@Suite("faults in the middle of a job", .serialized)
struct MidJobFaultTests {
    /// A database with ~9 MB of table text (md5 strings: gzip halves them), big enough that a
    /// dump slowed to 200 KB/s runs for a while and writes as it goes.
    static func bulkDatabase(_ pg: PostgresServer, _ prefix: String) throws -> String {
        let db = try pg.createDatabase(PostgresServer.uniqueDatabaseName(prefix))
        try pg.psql(bulkTable, database: db)
        return db
    }

    static let bulkTable = "CREATE TABLE t AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v FROM generate_series(1, 130000) g;"

    /// Runs `backstop backup postgres full` with a pg_dump slowed to `rate` bytes/s, calls
    /// `fault` once the dump's partial file exists, and waits for the CLI to exit. Returns its
    /// exit code and output.
    static func dumpWithFault(env: [String: String], pg: PostgresServer, postgresDir: String, db: String, logFile: String,
                              rate: Int = 200_000, fault: () throws -> Void) throws -> (code: Int32, output: String, seconds: Double) {
        let slow = try SlowPrograms(realDirectory: pg.binDirectory, slow: ["pg_dump": .output(bytesPerSecond: rate)])
        var env = env
        env["BACKUP_POSTGRES_BIN"] = slow.directory
        let cli = try BackstopBinary.spawn(["backup", "postgres", "full"], environment: env, logFile: logFile)
        try TestEnvironment.waitUntil(timeout: 30, "the slow pg_dump's partial file (log \(logFile))") {
            InterruptionTests.leftovers(postgresDir).contains { $0.hasPrefix("." + db) } && !SlowPrograms.descendants(of: cli).isEmpty
        }
        let below = SlowPrograms.descendants(of: cli)
        let t0 = Date()
        try fault()
        return try reap(cli, below: below, since: t0, logFile: logFile)
    }

    /// `backstop health` run once: alerts.json written; returns the BackupFailed targets in it.
    static func backupFailedAfterHealth(_ env: [String: String], backupDir: String) throws -> Set<String> {
        var env = env
        env["REDIS_HOST"] = "127.0.0.1"
        env["REDIS_PORT"] = "1"
        _ = try BackstopBinary.run(["health"], environment: env)
        return InterruptionTests.backupFailedTargets(backupDir)
    }

    @Test func theBackupVolumeFillsUpDuringADump() throws {
        let pg = try PostgresServer.shared
        let db = try Self.bulkDatabase(pg, "dfull")
        let (dir, volume) = try Tmpfs.inNewFolder("midjob-disk", size: "12m")
        defer { volume.unmount() }
        let backupDir = volume.path
        let postgresDir = backupDir + "/postgres"
        var env = pg.environment
        env["BACKUP_DIR"] = backupDir
        // A good backup first (the small `postgres` database), which must survive the fault.
        env["BACKUP_POSTGRES_DATABASES"] = "postgres"
        let first = try BackstopBinary.run(["backup", "postgres", "full"], environment: env)
        #expect(first.status == 0, "\(first.stderr)")
        let good = try InterruptionTests.fingerprint(postgresDir)
        #expect(good.keys.contains { $0.hasPrefix("postgres_full_") || $0.contains("postgres_") }, "\(good.keys)")

        env["BACKUP_POSTGRES_DATABASES"] = db
        let filler = backupDir + "/filler"
        let run = try Self.dumpWithFault(env: env, pg: pg, postgresDir: postgresDir, db: db, logFile: dir + "/cli.log") {
            // Fill what is left of the volume while the dump streams into it.
            _ = try TestProcesses.run("/bin/dd", ["if=/dev/zero", "of=\(filler)", "bs=65536"], check: false)
        }
        #expect(run.code != 0, "a dump onto a full disk exited 0: \(run.output)")
        #expect(run.code < 126, "exit \(run.code): a failure, not a crash or a signal")
        #expect(run.output.contains("No space left on device"), "the error does not say the disk is full: \(run.output)")
        #expect(InterruptionTests.leftovers(postgresDir).isEmpty, "\(InterruptionTests.leftovers(postgresDir))")
        // The files already there are untouched. The globals dump that follows may be written:
        // the failed dump's partial file and the 64 KiB its pg_dump reserved for stderr are
        // freed first. If it is, it is whole.
        let kept = try InterruptionTests.fingerprint(postgresDir)
        #expect(good.allSatisfy { kept[$0.key] == $0.value }, "the backups already there changed")
        let added = kept.keys.filter { good[$0] == nil }
        #expect(added.allSatisfy { $0.hasPrefix("globals_") }, "files other than a globals dump appeared: \(added)")
        for globals in added where !globals.hasSuffix(".meta") {
            let checked = try BackstopBinary.run(["verify", postgresDir + "/" + globals], environment: env)
            #expect(checked.status == 0, "\(checked.stdout)\(checked.stderr)")
        }
        #expect(!BackupCatalog(backupDir: backupDir).list(kinds: [.postgresFull]).contains { $0.target == db },
                "a dump of \(db) is listed after the disk filled")
        InterruptionTests.expectLockReleased(backupDir + "/.locks/postgres_full.lock")
        // The disk stays full (whatever filled it goes on writing): the filler takes back what
        // the failed run freed.
        _ = try TestProcesses.run("/bin/dd", ["if=/dev/zero", "of=\(filler)", "bs=4096", "oflag=append", "conv=notrunc"], check: false)
        // The alert for this fault is the disk's. alerts.json and `.state/` live on the same
        // full volume, so `backstop health` shows the alert and says it could not write the file
        // (serve would deliver it on its webhooks; the CLI's exit status and log line say the
        // backup failed).
        let health = try BackstopBinary.run(["health"], environment: env.merging(["REDIS_HOST": "127.0.0.1", "REDIS_PORT": "1"]) { _, new in new })
        let shown = health.stdout + health.stderr
        #expect(health.status != 0)
        #expect(shown.split(separator: "\n").contains { $0.contains("DiskSpaceLow") && $0.contains(backupDir) },
                "health shows no DiskSpaceLow for \(backupDir): \(shown)")
        #expect(shown.contains("could not update \(backupDir)/alerts.json") && shown.contains("No space left on device"), "\(shown)")
        let message = run.output.split(separator: "\n").first { $0.contains("No space left on device") }.map(String.init) ?? ""
        print("mid-job faults: disk full during the dump: \(message)")

        // The space comes back: the next run is whole and verifies.
        try FileManager.default.removeItem(atPath: filler)
        env["BACKUP_POSTGRES_BIN"] = pg.binDirectory
        let next = try BackstopBinary.run(["backup", "postgres", "full"], environment: env)
        #expect(next.status == 0, "\(next.stderr)")
        let made = try #require(BackupCatalog(backupDir: backupDir).list(kinds: [.postgresFull]).first { $0.target == db })
        let verify = try BackstopBinary.run(["verify", made.path], environment: env)
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        _ = try Self.backupFailedAfterHealth(env, backupDir: backupDir)
        let after = (try? String(contentsOfFile: backupDir + "/alerts.json", encoding: .utf8)) ?? ""
        #expect(after.contains("BackupStale") && !after.contains("DiskSpaceLow"), "with the space back alerts.json is written without DiskSpaceLow: \(after)")
        ReliabilityReport.record(
            fault: "the backup volume (a 12 MB tmpfs) filled while `pg_dump` streams into it",
            did: "`backup postgres full` exited \(run.code) \(String(format: "%.1f", run.seconds)) s later naming `No space left on device` and the file; the partial file removed, the lock released, `backstop health` shows DiskSpaceLow for the volume and says it could not write alerts.json there (No space left on device); with the space back the next dump was whole, passed `verify` and the alert resolved",
            lost: "nothing: the \(good.count) files already there byte-identical, no dump of the database listed")
    }

    @Test func postgresRestartsDuringADump() throws {
        let pg = try PostgresServer.start(name: "pg-restart")
        defer { pg.shutdown() }
        let dumped = try DumpedDatabase(pg, prefix: "prest", table: Self.bulkTable, folder: "midjob-pgrestart")
        let (db, dir, backupDir, postgresDir, env) = (dumped.db, dumped.dir, dumped.backupDir, dumped.postgresDir, dumped.environment)
        let good = try InterruptionTests.fingerprint(postgresDir)

        let run = try Self.dumpWithFault(env: env, pg: pg, postgresDir: postgresDir, db: db, logFile: dir + "/cli.log", rate: 100_000) {
            try pg.stop(mode: "fast")
            try pg.start()
        }
        #expect(run.code != 0, "a dump cut by a server restart exited 0: \(run.output)")
        #expect(run.code < 126, "exit \(run.code): a failure, not a crash or a signal")
        #expect(run.output.contains("pg_dump"), "the error does not name pg_dump: \(run.output)")
        #expect(InterruptionTests.leftovers(postgresDir).isEmpty, "\(InterruptionTests.leftovers(postgresDir))")
        #expect(try InterruptionTests.fingerprint(postgresDir) == good, "the backups already there changed")
        #expect(BackupCatalog(backupDir: backupDir).list(kinds: [.postgresFull]).filter { $0.target == db }.count == 1)
        InterruptionTests.expectLockReleased(backupDir + "/.locks/postgres_full.lock")
        let firing = try Self.backupFailedAfterHealth(env, backupDir: backupDir)
        #expect(firing.contains(db), "BackupFailed does not fire for \(db): \(firing)")
        let message = run.output.split(separator: "\n").first { $0.contains("pg_dump") && ($0.contains("error") || $0.contains("failed")) }
            .map(String.init) ?? "(no line)"

        let next = try BackstopBinary.run(["backup", "postgres", "full"], environment: env)
        #expect(next.status == 0, "\(next.stderr)")
        let dumps = BackupCatalog(backupDir: backupDir).list(kinds: [.postgresFull]).filter { $0.target == db }
        #expect(dumps.count == 2)
        if let newest = dumps.first {
            let verify = try BackstopBinary.run(["verify", newest.path], environment: env)
            #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        }
        print("mid-job faults: restart during the dump: \(message)")
        ReliabilityReport.record(
            fault: "PostgreSQL restarted (`pg_ctl restart -m fast`) while `pg_dump` streams",
            did: "`backup postgres full` exited \(run.code) \(String(format: "%.1f", run.seconds)) s later with pg_dump's error (the connection lost); the partial file removed, the lock released, BackupFailed fired (`backstop health`); the next run, against the restarted server, made a whole dump that passes `verify`",
            lost: "nothing: the \(good.count) files already there byte-identical")
    }
}

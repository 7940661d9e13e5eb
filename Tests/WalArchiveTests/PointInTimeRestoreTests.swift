import BackstopCore
import BackstopTestSupport
import BackupJobs
import Foundation
import Testing
import WalArchive
#if canImport(Glibc)
import Glibc
#endif

/// `backstop restore postgres --data-dir …` end to end against a real PostgreSQL: a base
/// backup, WAL archived by archive_command, restores started on their own ports.
@Suite(.serialized) struct PointInTimeRestoreTests {
    final class Started: @unchecked Sendable {
        // Only touched by the one test thread that owns it.
        var dataDirectories: [String] = []
        func stopAll(_ server: PostgresServer) {
            for dir in dataDirectories {
                _ = try? TestProcesses.run(server.program("pg_ctl"), ["-D", dir, "-m", "immediate", "-w", "stop"],
                                           asUser: TestEnvironment.isRoot ? "postgres" : nil, check: false)
            }
        }
    }

    private func restore(_ server: PostgresServer, backupDir: String, dataDir: String, _ extra: [String], started: Started) throws -> CommandResult {
        let port = try TestEnvironment.freePort()
        let result = try BackstopBinary.run(["restore", "postgres", "--backup-dir", backupDir, "--data-dir", dataDir, "--yes", "--start", "--port", String(port)] + extra,
                                            environment: server.environment)
        if result.status == 0 { started.dataDirectories.append(dataDir) }
        return result
    }

    private func rows(_ server: PostgresServer, port: Int) throws -> String {
        try TestProcesses.run(server.program("psql"), ["-X", "-A", "-t", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", "postgres",
                                                       "-c", "SELECT string_agg(note, ',' ORDER BY id) FROM t"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func port(of dataDir: String) throws -> Int {
        let pid = try String(contentsOfFile: dataDir + "/postmaster.pid", encoding: .utf8).split(separator: "\n")
        return Int(pid[3]) ?? 0
    }

    @Test func recoversToTheSecondLatestImmediateAndRefusesAGap() throws {
        let server = try PostgresServer.start(name: "pitr")
        let started = Started()
        defer {
            started.stopAll(server)
            server.shutdown()
        }
        let backupDir = try WalTestSupport.backupDirectory("pitr")
        try WalTestSupport.enableArchiveCommand(server, backupDir: backupDir)
        try server.psql("CREATE TABLE t(id serial, note text);")
        let jobSettings = try PostgresJobSettings(environment: server.environment.merging(["BACKUP_DIR": backupDir]) { $1 }, childEnvironment: server.environment)
        let base = try PostgresBaseBackup(settings: jobSettings, log: BackupLog(backupDir: backupDir, echo: false)).run()
        #expect(base.success, "\(base.message ?? "")")

        try server.psql("INSERT INTO t(note) VALUES ('before');")
        let beforeSegment = try server.psql("SELECT pg_walfile_name(pg_current_wal_lsn());")
        try server.psql("SELECT pg_switch_wal();")
        // T: a whole second strictly after the 'before' commit and before the 'after' one.
        let target = ceil(WallClock.now()) + 1
        while WallClock.now() < target + 0.5 { usleep(50_000) }
        try server.psql("INSERT INTO t(note) VALUES ('after');")
        try server.psql("SELECT pg_switch_wal();")
        try server.psql("INSERT INTO t(note) VALUES ('last');")
        let lastSegment = try server.psql("SELECT pg_walfile_name(pg_current_wal_lsn());")
        try server.psql("SELECT pg_switch_wal();")
        let archive = WalArchive(backupDir: backupDir)
        try WalTestSupport.waitForFile(archive.metaPath(lastSegment))
        let scratch = try TestEnvironment.makeTempDirectory("pitr-restores")
        _ = chmod(scratch, 0o755)

        // A dry run lists the base backup, the segments and the settings, and writes nothing.
        let dry = try BackstopBinary.run(["restore", "postgres", "--backup-dir", backupDir, "--data-dir", scratch + "/dry", "--to-time", WallClock.rfc3339(target), "--dry-run"],
                                         environment: server.environment)
        #expect(dry.status == 0, "\(dry.stderr)")
        let asWritten = WallClock.rfc3339(target).replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: "+00")
        #expect(dry.stdout.contains("recovery_target_time = '\(asWritten)'"), "\(dry.stdout)")
        #expect(dry.stdout.contains("restore_command = '") && dry.stdout.contains("wal fetch --backup-dir \(backupDir)"))
        #expect(!FileSystem.exists(scratch + "/dry"))

        // To the second: 'before' is there, 'after' is not.
        let timed = try restore(server, backupDir: backupDir, dataDir: scratch + "/timed", ["--to-time", WallClock.rfc3339(target)], started: started)
        #expect(timed.status == 0, "\(timed.stderr)\(timed.stdout)")
        #expect(try rows(server, port: try port(of: scratch + "/timed")) == "before")
        #expect(try String(contentsOfFile: scratch + "/timed/postgresql.auto.conf", encoding: .utf8).contains("recovery_target_time"))

        // --latest: everything archived.
        let latest = try restore(server, backupDir: backupDir, dataDir: scratch + "/latest", ["--latest"], started: started)
        #expect(latest.status == 0, "\(latest.stderr)\(latest.stdout)")
        #expect(try rows(server, port: try port(of: scratch + "/latest")) == "before,after,last")

        // --immediate: the base backup alone (the table, no rows).
        let immediate = try restore(server, backupDir: backupDir, dataDir: scratch + "/immediate", ["--immediate"], started: started)
        #expect(immediate.status == 0, "\(immediate.stderr)\(immediate.stdout)")
        #expect(try rows(server, port: try port(of: scratch + "/immediate")) == "")

        // A non-empty data directory is refused.
        let busy = try restore(server, backupDir: backupDir, dataDir: scratch + "/latest", ["--latest"], started: Started())
        #expect(busy.status == 1 && busy.stderr.contains("not empty"))

        // A segment gone from the middle: verify names it, the restore refuses with nothing written.
        #expect(try BackstopBinary.run(["verify", "--wal", "--backup-dir", backupDir]).status == 0)
        #expect(rename(archive.dataPath(beforeSegment), scratch + "/moved.gz") == 0)
        #expect(rename(archive.metaPath(beforeSegment), scratch + "/moved.meta") == 0)
        let verify = try BackstopBinary.run(["verify", "--wal", "--backup-dir", backupDir])
        #expect(verify.status == 1)
        #expect(verify.stdout.contains("gap: \(beforeSegment) is missing"))
        let refused = try restore(server, backupDir: backupDir, dataDir: scratch + "/gap", ["--to-time", WallClock.rfc3339(target)], started: started)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains(beforeSegment) && refused.stderr.contains("Nothing was changed"))
        #expect(!FileSystem.exists(scratch + "/gap"))
        // A corrupted segment is caught by verify too.
        #expect(rename(scratch + "/moved.gz", archive.dataPath(beforeSegment)) == 0)
        #expect(rename(scratch + "/moved.meta", archive.metaPath(beforeSegment)) == 0)
        var gz = try FileSystem.read(archive.dataPath(lastSegment))
        gz[gz.count / 2] ^= 0x20
        try Data(gz).write(to: URL(fileURLWithPath: archive.dataPath(lastSegment)))
        let corrupt = try BackstopBinary.run(["verify", "--wal", "--backup-dir", backupDir])
        #expect(corrupt.status == 1 && corrupt.stdout.contains(lastSegment))
        let log = try String(contentsOfFile: backupDir + "/logs/backup.log", encoding: .utf8)
        #expect(log.contains("restore postgres pitr: recovery ended at LSN"))
        #expect(log.contains("restore postgres pitr: refused"))
    }
}

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
    /// A started restore of `archiving`'s archive into `dataDir`; a started cluster is recorded
    /// (`record`) to be stopped with the server.
    private func restore(_ archiving: ArchivingServer, dataDir: String, _ extra: [String], record: Bool = true) throws -> CommandResult {
        let port = try TestEnvironment.freePort()
        let result = try BackstopBinary.run(["restore", "postgres", "--backup-dir", archiving.backupDir, "--data-dir", dataDir, "--yes", "--start", "--port", String(port)] + extra,
                                            environment: archiving.server.environment)
        if result.status == 0 && record { archiving.restoredDataDirectories.append(dataDir) }
        return result
    }

    private func rows(_ server: PostgresServer, port: Int) throws -> String {
        try TestProcesses.run(server.program("psql"), ["-X", "-A", "-t", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", "postgres",
                                                       "-c", "SELECT string_agg(note, ',' ORDER BY id) FROM t"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func recoversToTheSecondLatestImmediateAndRefusesAGap() throws {
        let archiving = try ArchivingServer("pitr")
        defer { archiving.shutdown() }
        let (server, backupDir) = (archiving.server, archiving.backupDir)
        try server.psql("CREATE TABLE t(id serial, note text);")
        let base = try archiving.baseBackup()
        #expect(base.success, "\(base.message ?? "")")

        // T: a whole second strictly after the 'before' commit and before the 'after' one.
        let (beforeSegment, target, lastSegment) = try archiving.writeAroundATargetTime()
        let archive = WalArchive(backupDir: backupDir)
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
        let timed = try restore(archiving, dataDir: scratch + "/timed", ["--to-time", WallClock.rfc3339(target)])
        #expect(timed.status == 0, "\(timed.stderr)\(timed.stdout)")
        #expect(try rows(server, port: try WalTestSupport.port(of: scratch + "/timed")) == "before")
        #expect(try String(contentsOfFile: scratch + "/timed/postgresql.auto.conf", encoding: .utf8).contains("recovery_target_time"))

        // --latest: everything archived.
        let latest = try restore(archiving, dataDir: scratch + "/latest", ["--latest"])
        #expect(latest.status == 0, "\(latest.stderr)\(latest.stdout)")
        #expect(try rows(server, port: try WalTestSupport.port(of: scratch + "/latest")) == "before,after,last")

        // --immediate: the base backup alone (the table, no rows).
        let immediate = try restore(archiving, dataDir: scratch + "/immediate", ["--immediate"])
        #expect(immediate.status == 0, "\(immediate.stderr)\(immediate.stdout)")
        #expect(try rows(server, port: try WalTestSupport.port(of: scratch + "/immediate")) == "")

        // A non-empty data directory is refused.
        let busy = try restore(archiving, dataDir: scratch + "/latest", ["--latest"], record: false)
        #expect(busy.status == 1 && busy.stderr.contains("not empty"))

        // A segment gone from the middle: verify names it, the restore refuses with nothing written.
        #expect(try BackstopBinary.run(["verify", "--wal", "--backup-dir", backupDir]).status == 0)
        #expect(rename(archive.dataPath(beforeSegment), scratch + "/moved.gz") == 0)
        #expect(rename(archive.metaPath(beforeSegment), scratch + "/moved.meta") == 0)
        let verify = try BackstopBinary.run(["verify", "--wal", "--backup-dir", backupDir])
        #expect(verify.status == 1)
        #expect(verify.stdout.contains("gap: \(beforeSegment) is missing"))
        let refused = try restore(archiving, dataDir: scratch + "/gap", ["--to-time", WallClock.rfc3339(target)])
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

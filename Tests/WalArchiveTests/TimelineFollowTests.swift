import BackstopCore
import BackstopTestSupport
import BackupJobs
import Foundation
import Testing
import WalArchive
#if canImport(Glibc)
import Glibc
#endif

/// A restore promoted to timeline 2 whose WAL then reaches the archive: verify follows the
/// `.history` file and a second restore reaches the rows written on the new timeline.
@Suite(.serialized) struct TimelineFollowTests {
    @Test func promotedTimelineIsFollowed() throws {
        let archiving = try ArchivingServer("tlfollow")
        defer { archiving.shutdown() }
        let (server, backupDir) = (archiving.server, archiving.backupDir)
        try server.psql("CREATE TABLE t(note text);")
        #expect(try archiving.baseBackup().success)
        try server.psql("INSERT INTO t VALUES ('one');")
        // The insert location: the test server runs with synchronous_commit = off, so the write
        // location can still be before the commit of 'one'.
        let lsn = try server.psql("SELECT pg_current_wal_insert_lsn();")
        let segment = try server.psql("SELECT pg_walfile_name(pg_current_wal_insert_lsn());")
        try server.psql("INSERT INTO t VALUES ('not on timeline 2'); SELECT pg_switch_wal();")
        let archive = WalArchive(backupDir: backupDir)
        try WalTestSupport.waitForFile(archive.metaPath(segment))
        let target = try #require(LSN(lsn))
        try WalTestSupport.waitForFile(archive.metaPath(WalSegment(timeline: 1, lsn: target).name))
        let scratch = try TestEnvironment.makeTempDirectory("tlfollow-restores")
        _ = chmod(scratch, 0o755)

        // Restore to an LSN and promote: timeline 2.
        let port = try TestEnvironment.freePort()
        let first = try BackstopBinary.run(["restore", "postgres", "--backup-dir", backupDir, "--data-dir", scratch + "/tl2", "--to-lsn", lsn,
                                            "--start", "--port", String(port), "--yes"], environment: server.environment)
        #expect(first.status == 0, "\(first.stderr)\(first.stdout)")
        archiving.restoredDataDirectories.append(scratch + "/tl2")
        let psql = { (sql: String) throws -> String in
            try TestProcesses.run(server.program("psql"), ["-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", "postgres", "-c", sql])
                .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try psql("SELECT timeline_id FROM pg_control_checkpoint();") == "2" || FileSystem.exists(scratch + "/tl2/pg_wal/00000002.history"))
        try _ = psql("INSERT INTO t VALUES ('two');")
        let tl2Segment = try psql("SELECT pg_walfile_name(pg_current_wal_lsn());")
        try _ = psql("SELECT pg_switch_wal();")
        // The new primary archives (as its archive_command would): the history file and its segments.
        let wal = scratch + "/tl2/pg_wal"
        let names = try FileSystem.list(wal).filter { $0.hasPrefix("00000002") && !$0.hasSuffix(".partial") && $0 <= tl2Segment || $0 == "00000002.history" }
        #expect(names.contains("00000002.history") && names.contains(tl2Segment), "\(names)")
        for name in names.sorted() {
            let pushed = try BackstopBinary.run(["wal", "push", "--backup-dir", backupDir, wal + "/" + name])
            #expect(pushed.status == 0, "\(name): \(pushed.stderr)")
        }
        let verify = try BackstopBinary.run(["verify", "--wal", "--backup-dir", backupDir])
        #expect(verify.status == 0, "\(verify.stdout)")
        #expect(verify.stdout.contains("timeline 2:"))

        // A restore to the latest point follows timeline 2: 'two' is there, the abandoned row is not.
        let port2 = try TestEnvironment.freePort()
        let second = try BackstopBinary.run(["restore", "postgres", "--backup-dir", backupDir, "--data-dir", scratch + "/again", "--latest",
                                             "--start", "--port", String(port2), "--yes"], environment: server.environment)
        #expect(second.status == 0, "\(second.stderr)\(second.stdout)")
        archiving.restoredDataDirectories.append(scratch + "/again")
        let rows = try TestProcesses.run(server.program("psql"), ["-X", "-A", "-t", "-h", "127.0.0.1", "-p", String(port2), "-U", "postgres", "-d", "postgres",
                                                                  "-c", "SELECT string_agg(note, ',' ORDER BY note) FROM t"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(rows == "one,two")
    }
}

import BackstopCore
import BackstopTestSupport
import BackupCatalog
import BackupJobs
import Foundation
import Testing
import WalArchive

/// Retention keeps exactly the WAL the kept base backups need.
@Suite(.serialized) struct WalRetentionTests {
    @Test func segmentsBeforeTheOldestKeptBaseBackupGoTheRestStays() throws {
        let archiving = try ArchivingServer("walret")
        defer { archiving.shutdown() }
        let (server, backupDir) = (archiving.server, archiving.backupDir)
        let log = BackupLog(backupDir: backupDir, echo: false)
        let archive = WalArchive(backupDir: backupDir)
        // Nothing is pruned without a base backup.
        try server.psql("SELECT pg_switch_wal();")
        #expect(WalRetention(backupDir: backupDir).run(dryRun: false, log: nil).removed.isEmpty)

        let first = try archiving.baseBackup(log: log)
        try server.psql("CREATE TABLE t AS SELECT generate_series(1, 1000) x; SELECT pg_switch_wal();")
        try server.psql("INSERT INTO t SELECT 1; SELECT pg_switch_wal();")
        sleep(1) // a second base backup gets its own stamp
        let second = try archiving.baseBackup(log: log)
        #expect(first.success && second.success)
        try server.psql("INSERT INTO t SELECT 2;")
        let last = try server.psql("SELECT pg_walfile_name(pg_current_wal_lsn());")
        try server.psql("SELECT pg_switch_wal();")
        try WalTestSupport.waitForFile(archive.metaPath(last))
        let secondPath = try #require(second.path)
        let secondMeta = try #require(try BackupMeta.read(forData: secondPath))
        let secondStart = try #require(LSN(secondMeta.startLSN ?? ""))
        let keepFrom = WalSegment(timeline: 1, lsn: secondStart).name
        let firstPathEarly = try #require(first.path)
        let firstMeta = try #require(try BackupMeta.read(forData: firstPathEarly))
        let firstStart = try #require(LSN(firstMeta.startLSN ?? ""))
        let firstKeep = WalSegment(timeline: 1, lsn: firstStart).name
        // Both base backups kept: only the WAL from before the first goes.
        let early = WalRetention(backupDir: backupDir).run(dryRun: false, log: nil)
        #expect(!early.removed.isEmpty && early.removed.allSatisfy { $0 < firstKeep })
        let before = archive.contents().segments.map(\.segment.name)
        #expect(before.first == firstKeep)
        #expect(before.contains { $0 < keepFrom }, "the first base backup's WAL is archived: \(before)")

        // The first base backup aged out: a dry run lists, the real run removes, exactly what it alone needed.
        let firstPath = try #require(first.path)
        try FileManager.default.removeItem(atPath: firstPath)
        try FileManager.default.removeItem(atPath: BackupMeta.path(for: firstPath))
        let dry = WalRetention(backupDir: backupDir).run(dryRun: true, log: nil)
        #expect(dry.removed.filter { $0.count == 24 } == before.filter { $0 < keepFrom })
        #expect(archive.contents().segments.count == before.count)
        let cleanup = try BackstopBinary.run(["cleanup", "--backup-dir", backupDir], environment: server.environment)
        #expect(cleanup.status == 0, "\(cleanup.stderr)")
        #expect(cleanup.stdout.contains("WAL archive: \(dry.removed.count) segments before \(keepFrom) removed"))
        let after = archive.contents().segments.map(\.segment.name)
        #expect(after == before.filter { $0 >= keepFrom })
        #expect(after.contains(last))
        // What remains is a whole chain from the remaining base backup.
        let verify = try BackstopBinary.run(["verify", "--wal", "--backup-dir", backupDir])
        #expect(verify.status == 0, "\(verify.stdout)")
    }
}

import BackstopCore
import BackstopTestSupport
import BackupCatalog
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM to `backstop cleanup` while it deletes: it stops between two backups (each either
/// whole with its `.meta` or gone with it), exits 143, releases its lock, and the next cleanup
/// removes the rest.
@Suite("cleanup interruption", .serialized)
struct CleanupInterruptionTests {
    /// Names of `postgres/` that are a data file or a `.meta` (not the index, not hidden files).
    static func backupNames(_ folder: String) -> Set<String> {
        Set(((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { !$0.hasPrefix(".") && $0.contains("_full_") })
    }

    @Test func sigtermToTheCLIDuringCleanupLeavesEachBackupWholeOrGone() throws {
        let pg = try PostgresServer.shared
        let dumped = try DumpedDatabase(pg, prefix: "intrcl", table: "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g;", folder: "intr-cleanup")
        let (db, dir, backupDir, postgresDir) = (dumped.db, dumped.dir, dumped.backupDir, dumped.postgresDir)
        let real = try #require(BackupCatalog(backupDir: backupDir).list().first { $0.target == db && $0.meta != nil })
        let realName = (real.path as NSString).lastPathComponent
        let sha = String(try TestProcesses.run("/usr/bin/sha256sum", [real.path]).stdout.prefix(64))
        let size = try #require(FileManager.default.attributesOfItem(atPath: real.path)[.size] as? UInt64)

        // Many old copies of the real dump (hard links, each with its own `.meta`), an hour
        // apart two years back: enough deleting that the signal lands in the middle.
        let count = 6000
        let start = WallClock.now() - 800 * 86_400
        for i in 0..<count {
            let t = start + Double(i) * 3600
            let path = "\(postgresDir)/\(db)_full_\(WallClock.fileStamp(t)).sql.gz"
            try #require(link(real.path, path) == 0, "link \(path): errno \(errno)")
            try BackupMeta(kind: .postgresFull, target: db, file: path, startedAt: t, finishedAt: t + 1,
                           sizeBytes: size, sha256: sha, compression: "gzip", serverVersion: nil).write(forData: path)
        }
        let before = Self.backupNames(postgresDir)
        #expect(before.count == 2 * (count + 1), "\(before.count) files")

        var cleanupEnv = ["BACKUP_DIR": backupDir, "BACKUP_RETENTION_DAYS": "30", "BACKUP_KEEP_DAILY": "0",
                          "BACKUP_KEEP_WEEKLY": "0", "BACKUP_KEEP_MONTHLY": "0", "BACKUP_KEEP_YEARLY": "0"]
        let log = dir + "/cleanup.log"
        let cli = try BackstopBinary.spawn(["cleanup"], environment: cleanupEnv, logFile: log)
        try TestEnvironment.waitUntil(timeout: 30, "cleanup deleting (log \(log))") {
            Self.backupNames(postgresDir).count < before.count - 20
        }
        let seconds = InterruptionTests.expectStopsOnSIGTERM(cli, log: log, what: "cleanup").seconds

        // Each backup whole or gone: no `.meta` without its data, no data without its `.meta`.
        let after = Self.backupNames(postgresDir)
        let metas = Set(after.filter { $0.hasSuffix(".meta") }.map { String($0.dropLast(5)) })
        let data = after.filter { !$0.hasSuffix(".meta") }
        #expect(metas == data, "half-deleted: \(metas.symmetricDifference(data).sorted().prefix(5))")
        let removed = (before.count - after.count) / 2
        #expect(removed > 0 && data.count > 1, "the signal did not land mid-cleanup: \(removed) removed, \(data.count) left")
        #expect(data.contains(realName), "the recent backup was removed")
        InterruptionTests.expectLockReleased(backupDir + "/.state/cleanup.lock")

        // The next cleanup finishes the job.
        cleanupEnv["BACKUP_DIR"] = backupDir
        let next = try BackstopBinary.run(["cleanup"], environment: cleanupEnv)
        #expect(next.status == 0, "\(next.stdout)\(next.stderr)")
        #expect(Self.backupNames(postgresDir) == [realName, realName + ".meta"], "\(Self.backupNames(postgresDir).count) left")
        try InterruptionTests.expectVerifyPasses(backupDir)
        ReliabilityReport.record(
            fault: "`backstop cleanup` SIGTERMed while it deletes (\(count) expired backups)",
            did: "exited 143 \(String(format: "%.1f", seconds)) s after the signal, between two backups (\(removed) removed, \(data.count - 1) expired left, each whole with its `.meta`); the lock released; the next cleanup removed the rest",
            lost: "nothing: no half-deleted backup, the recent backup kept and passing `verify`")
    }
}

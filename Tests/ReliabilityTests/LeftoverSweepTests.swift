import BackstopCore
import BackstopTestSupport
import BackupJobs
import Foundation
import Testing

/// The start-up sweep removes only what a dead run left: never the file of a run in progress
/// (its job's lock is held), never a complete backup or a `.meta`, never a live pid's file.
@Suite("start-up sweep")
struct LeftoverSweepTests {
    @Test func aRunInProgressKeepsItsPartialFileAndGoodBackupsAreNeverCandidates() throws {
        let backupDir = try TestEnvironment.makeTempDirectory("sweep")
        let postgres = backupDir + "/postgres", redis = backupDir + "/redis"
        try FileSystem.createDirectory(postgres)
        try FileSystem.createDirectory(redis)
        let inProgress = postgres + "/.app_full_20260101_000000.sql.gz.partial"
        let dead = redis + "/.redis_20260101_000000.rdb.gz.partial"
        let keep = [postgres + "/app_full_20250101_000000.sql.gz", postgres + "/app_full_20250101_000000.sql.gz.meta",
                    postgres + "/.wal_archive_note.partial.txt", postgres + "/.something.partial", // not a job's name
                    redis + "/redis_20250101_000000.rdb.gz", redis + "/redis_20250101_000000.rdb.gz.meta"]
        for path in [inProgress, dead] + keep { try AtomicFile.write("x", to: path) }

        // A `backstop backup postgres full` holds its lock: its partial is in use.
        let lock = try FileLock(path: backupDir + "/.locks/postgres_full.lock", purpose: "backup postgres full")
        let actions = LeftoverSweep.run(backupDir: backupDir)
        #expect(FileSystem.exists(inProgress), "the partial file of a running job was removed")
        #expect(!FileSystem.exists(dead))
        #expect(actions.map(\.path) == [dead], "\(actions)")
        for path in keep { #expect(FileSystem.exists(path), "\(path) was removed") }

        // Once the run is gone, its partial goes too.
        lock.release()
        #expect(LeftoverSweep.run(backupDir: backupDir).map(\.path) == [inProgress])
        #expect(LeftoverSweep.run(backupDir: backupDir).isEmpty)
    }
}

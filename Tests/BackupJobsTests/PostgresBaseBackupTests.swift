import BackstopCore
import BackstopMetrics
import BackstopTestSupport
import BackupCatalog
import BackupJobs
import Foundation
import Testing

@Suite struct PostgresBaseBackupTests {
    @Test func baseBackupPassesPgVerifybackupAndRecordsItsWalRange() throws {
        let server = try PostgresServer.shared
        let backupDir = try TestEnvironment.makeTempDirectory("base")
        let settings = try Fixtures.settings(server: server, database: "postgres", backupDir: backupDir)
        let outcome = try PostgresBaseBackup(settings: settings, log: BackupLog(backupDir: backupDir, echo: false)).run()
        #expect(outcome.success, "\(outcome.message ?? "")")
        let path = try #require(outcome.path)
        #expect(FileSystem.lastComponent(of: path).hasPrefix("wal_"))
        #expect(Fixtures.files(in: path) == ["backup_manifest", "base.tar.gz", "pg_wal.tar.gz"])
        #expect(!Fixtures.files(in: backupDir + "/postgres").contains { $0.hasPrefix(".") })
        let meta = try #require(try BackupMeta.read(forData: path))
        #expect(meta.type == "incremental" && meta.status == "completed")
        #expect(meta.startLSN?.contains("/") == true && meta.endLSN?.contains("/") == true)
        #expect(meta.timeline == 1)
        #expect(meta.files?.count == 3)
        let entry = try #require(BackupCatalog(backupDir: backupDir).list(kinds: [.postgresBase]).first)
        #expect(entry.state == .complete && entry.isDirectory)
        let result = BackupVerification(settings: settings).verify(entry)
        #expect(result.ok, "\(result.problems)")
        #expect(result.checked.contains("pg_verifybackup ok"))

        // A damaged tar is caught.
        let tar = path + "/base.tar.gz"
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: tar)))
        bytes[bytes.count / 3] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: tar))
        #expect(!BackupVerification(settings: settings).verify(entry).ok)
    }

    @Test func failedBaseBackupLeavesNoFolder() throws {
        let server = try PostgresServer.shared
        let backupDir = try TestEnvironment.makeTempDirectory("base-fail")
        // A port nothing listens on: pg_basebackup cannot connect.
        let settings = try Fixtures.settings(server: server, database: "postgres", backupDir: backupDir,
                                             extra: ["PGPORT": String(try TestEnvironment.freePort())])
        let outcome = try PostgresBaseBackup(settings: settings, log: BackupLog(backupDir: backupDir, echo: false)).run()
        #expect(!outcome.success)
        #expect(outcome.message?.contains("pg_basebackup exited") == true)
        #expect(Fixtures.files(in: backupDir + "/postgres").isEmpty)
        #expect(AttemptsRecord.load(backupDir: backupDir).attempts["postgres_base/postgres"]?.success == false)
    }
}

import BackstopCore
import BackstopTestSupport
import BackupJobs
import Foundation
import Testing
import WalArchive

/// `backstop drill --pitr` against a real PostgreSQL archiving through archive_command.
@Suite(.serialized) struct PitrDrillTests {
    @Test func drillRestoresToItsMarkerAndRecordsTheResult() throws {
        let server = try PostgresServer.start(name: "pitrdrill")
        defer { server.shutdown() }
        let backupDir = try WalTestSupport.backupDirectory("pitrdrill")
        try WalTestSupport.enableArchiveCommand(server, backupDir: backupDir)
        // No base backup yet: the drill fails and says why.
        let none = try BackstopBinary.run(["drill", "--pitr", "--backup-dir", backupDir], environment: server.environment)
        #expect(none.status == 1)
        #expect(none.stdout.contains("no good base backup"))
        let jobSettings = try PostgresJobSettings(environment: server.environment.merging(["BACKUP_DIR": backupDir]) { $1 }, childEnvironment: server.environment)
        #expect(try PostgresBaseBackup(settings: jobSettings, log: BackupLog(backupDir: backupDir, echo: false)).run().success)

        let drill = try BackstopBinary.run(["drill", "--pitr", "--backup-dir", backupDir], environment: server.environment)
        #expect(drill.status == 0, "\(drill.stdout)\(drill.stderr)")
        #expect(drill.stdout.contains("drill pitr: success"))
        #expect(drill.stdout.contains("reached restore point drill_"))
        let record = try String(contentsOfFile: backupDir + "/.state/restores.json", encoding: .utf8)
        #expect(record.contains("postgres_pitr"))
        #expect(((try? FileSystem.list(backupDir + "/.state")) ?? []).allSatisfy { !$0.hasPrefix("drill-pitr-") }, "the scratch data directory is removed")
        #expect(try server.psql("SELECT count(*) FROM backstop_drill;") == "1")
    }
}

import BackstopCore
import BackstopTestSupport
import BackupJobs
import Foundation
import Testing
import WalArchive

/// `backstop drill --pitr` against a real PostgreSQL archiving through archive_command.
@Suite(.serialized) struct PitrDrillTests {
    @Test func drillRestoresToItsMarkerAndRecordsTheResult() throws {
        let archiving = try ArchivingServer("pitrdrill")
        defer { archiving.shutdown() }
        let (server, backupDir) = (archiving.server, archiving.backupDir)
        // No base backup yet: the drill fails and says why.
        let none = try BackstopBinary.run(["drill", "--pitr", "--backup-dir", backupDir], environment: server.environment)
        #expect(none.status == 1)
        #expect(none.stdout.contains("no good base backup"))
        #expect(try archiving.baseBackup().success)

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

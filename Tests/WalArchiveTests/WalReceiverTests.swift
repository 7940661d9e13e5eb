import BackstopCore
import BackstopMetrics
import BackstopTestSupport
import BackupCatalog
import BackupJobs
import Foundation
import Testing
@testable import WalArchive

/// pg_receivewal supervised into the archive, against a real PostgreSQL that is restarted
/// while it streams and a receiver that is SIGKILLed: no segment may be missing afterwards.
@Suite(.serialized) struct WalReceiverTests {
    private func switchWal(_ server: PostgresServer, rows: Int) throws -> String {
        try server.psql("INSERT INTO t SELECT generate_series(1, \(rows));")
        let name = try server.psql("SELECT pg_walfile_name(pg_current_wal_lsn());")
        try server.psql("SELECT pg_switch_wal();")
        return name
    }

    @Test func killedReceiverAndRestartedServerLoseNoSegment() throws {
        let server = try PostgresServer.start(name: "walrecv")
        defer { server.shutdown() }
        let backupDir = try TestEnvironment.makeTempDirectory("walrecv")
        let env = server.environment.merging(["BACKUP_DIR": backupDir, "BACKUP_WAL_ARCHIVE": "receivewal"]) { $1 }
        let jobSettings = try PostgresJobSettings(environment: env, childEnvironment: server.environment)
        let settings = try WalArchiveSettings(environment: env)
        #expect(settings.slot == "backstop" && settings.mode == .receivewal)
        let registry = MetricsRegistry()
        WalMetrics.declare(in: registry, receiver: true)
        let receiver = WalReceiver(settings: settings, jobSettings: jobSettings, log: BackupLog(backupDir: backupDir, echo: false), metrics: registry)
        let thread = Thread { receiver.run() }
        thread.start()
        defer { receiver.stop() }
        try TestEnvironment.waitUntil(timeout: 30, "pg_receivewal streaming") {
            (try? server.psql("SELECT count(*) FROM pg_stat_replication WHERE application_name = 'backstop';")) == "1"
        }
        #expect(try server.psql("SELECT slot_type FROM pg_replication_slots WHERE slot_name = 'backstop';") == "physical")
        try server.psql("CREATE TABLE t(x int);")
        let base = try PostgresBaseBackup(settings: jobSettings, log: BackupLog(backupDir: backupDir, echo: false)).run()
        #expect(base.success, "\(base.message ?? "")")
        var written: [String] = []
        for _ in 0..<2 { written.append(try switchWal(server, rows: 5000)) }

        // SIGKILL the receiver's pg_receivewal mid-stream: serve starts another.
        let firstPID = receiver.childPID
        #expect(firstPID > 0)
        kill(firstPID, SIGKILL)
        written.append(try switchWal(server, rows: 5000))
        try TestEnvironment.waitUntil(timeout: 30, "a new pg_receivewal") { receiver.childPID > 0 && receiver.childPID != firstPID }

        // Restart PostgreSQL while streaming; WAL written meanwhile must arrive too.
        try server.stop()
        try server.start()
        for _ in 0..<2 { written.append(try switchWal(server, rows: 5000)) }
        let archive = receiver.archive
        try TestEnvironment.waitUntil(timeout: 90, "segments \(written) archived") {
            written.allSatisfy { archive.meta($0) != nil }
        }
        #expect(registry.value(Family.walReceiverRestarts) ?? 0 >= 2, "the kill and the server restart each ended pg_receivewal")
        #expect(registry.value(Family.walReceiverUp) == 1)
        #expect(registry.value(Family.walArchiveLastSegment) ?? 0 > WallClock.now() - 120)

        // The chain from the base backup to the newest segment is whole.
        let basePath = try #require(base.path)
        let meta = try #require(try BackupMeta.read(forData: basePath))
        let chain = WalChain.load(archive)
        let start = try #require(LSN(meta.startLSN ?? ""))
        let report = chain.check(from: start, timeline: 1)
        #expect(report.isContinuous, "missing \(report.missing) \(report.problems)")
        #expect(report.segments.map(\.name).contains(written.last!))
        #expect(chain.contents.conflicts.isEmpty, "a re-streamed segment matched the archived one")
        #expect(((try? FileSystem.list(archive.stagingDirectory)) ?? []).allSatisfy { $0.hasSuffix(".partial") || $0.hasPrefix(".") },
                "completed segments leave the staging folder once archived")

        // The monitor: slot retention, lag and the recovery window.
        WalMonitor(jobSettings: jobSettings, settings: settings).refresh(registry)
        #expect(registry.series(Family.replicationSlotRetained).contains { $0.labels["slot"] == "backstop" })
        #expect(registry.value(Family.recoveryWindowStart) ?? 0 > 0)
        #expect(registry.value(Family.recoveryWindowEnd) ?? 0 >= registry.value(Family.recoveryWindowStart) ?? 0)

        receiver.stop()
        try TestEnvironment.waitUntil(timeout: 20, "receiver stopped") { receiver.childPID == 0 && thread.isFinished }
    }

    @Test func roleWithoutReplicationGetsTheRemedy() throws {
        let server = try PostgresServer.shared
        let role = "norepl_\(getpid())"
        try server.psql("DROP ROLE IF EXISTS \(role); CREATE ROLE \(role) LOGIN;")
        let backupDir = try TestEnvironment.makeTempDirectory("walnorepl")
        var env = server.environment
        env["PGUSER"] = role
        let jobSettings = try PostgresJobSettings(environment: env.merging(["BACKUP_DIR": backupDir]) { $1 }, childEnvironment: env)
        let receiver = WalReceiver(settings: try WalArchiveSettings(environment: ["BACKUP_WAL_SLOT": "norepl"]), jobSettings: jobSettings,
                                   log: BackupLog(backupDir: backupDir, echo: false), metrics: nil)
        #expect { try receiver.ensureSlot() } throws: { error in
            "\(error)".contains("REPLICATION attribute")
        }
    }

    @Test func badSettingsNameTheVariable() {
        #expect { try WalArchiveSettings(environment: ["BACKUP_WAL_ARCHIVE": "sometimes"]) } throws: { "\($0)".contains("BACKUP_WAL_ARCHIVE") }
        #expect { try WalArchiveSettings(environment: ["BACKUP_WAL_SLOT": "Bad-Slot"]) } throws: { "\($0)".contains("BACKUP_WAL_SLOT") }
        #expect { try WalArchiveSettings(environment: ["BACKUP_WAL_SYNCHRONOUS": "maybe"]) } throws: { "\($0)".contains("BACKUP_WAL_SYNCHRONOUS") }
    }
}

/// A `.partial` cut short by a kill during pg_receivewal's zero-fill would stop every restart;
/// the receiver zero-extends it, keeping the bytes already there.
@Suite struct PartialRepairTests {
    @Test func shortPartialIsZeroExtendedKeepingItsBytes() throws {
        let backupDir = try TestEnvironment.makeTempDirectory("walrepair")
        let jobSettings = try PostgresJobSettings(environment: ["BACKUP_DIR": backupDir])
        let receiver = WalReceiver(settings: try WalArchiveSettings(environment: [:]), jobSettings: jobSettings,
                                   log: BackupLog(backupDir: backupDir, echo: false), metrics: nil)
        try FileSystem.createDirectory(receiver.archive.stagingDirectory)
        let short = receiver.archive.stagingDirectory + "/000000010000000000000004.partial"
        let whole = receiver.archive.stagingDirectory + "/000000010000000000000005.partial"
        let prefix = [UInt8](repeating: 0xAB, count: 4096)
        try Data(prefix).write(to: URL(fileURLWithPath: short))
        try Data(count: 16 << 20).write(to: URL(fileURLWithPath: whole))
        receiver.repairPartials()
        let repaired = try FileSystem.read(short)
        #expect(repaired.count == 16 << 20)
        #expect(Array(repaired.prefix(4096)) == prefix)
        #expect(repaired.dropFirst(4096).allSatisfy { $0 == 0 })
        #expect(try FileSystem.read(whole).count == 16 << 20)
    }

    /// What a full disk leaves: the zero-fill cut by ENOSPC, no WAL in it. Removed, so the
    /// space goes to archiving what is staged (pg_receivewal starts the segment again).
    @Test func shortAllZeroPartialIsRemoved() throws {
        let backupDir = try TestEnvironment.makeTempDirectory("walrepair0")
        let jobSettings = try PostgresJobSettings(environment: ["BACKUP_DIR": backupDir])
        let receiver = WalReceiver(settings: try WalArchiveSettings(environment: [:]), jobSettings: jobSettings,
                                   log: BackupLog(backupDir: backupDir, echo: false), metrics: nil)
        try FileSystem.createDirectory(receiver.archive.stagingDirectory)
        let zeros = receiver.archive.stagingDirectory + "/000000010000000000000006.partial"
        try Data(count: 11_821_056).write(to: URL(fileURLWithPath: zeros))
        #expect(receiver.repairPartials())
        #expect(!FileManager.default.fileExists(atPath: zeros))
        #expect(!receiver.repairPartials(), "nothing left to remove")
    }
}

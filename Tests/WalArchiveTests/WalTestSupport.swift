import AgeEncryption
import BackstopCore
import BackstopTestSupport
import BackupJobs
import Foundation
import WalArchive
#if canImport(Glibc)
import Glibc
#endif

/// Helpers shared by the WAL archive tests.
enum WalTestSupport {
    /// A backup folder the test server's own user can write (`TestEnvironment.archiveBackupDirectory`).
    static func backupDirectory(_ prefix: String) throws -> String {
        try TestEnvironment.archiveBackupDirectory(prefix)
    }

    /// Turns archive_command on (restart): every completed segment goes through
    /// `backstop wal push`.
    static func enableArchiveCommand(_ server: PostgresServer, backupDir: String) throws {
        try server.psql("ALTER SYSTEM SET archive_mode = on;\nALTER SYSTEM SET archive_command = '\(try archiveCommand(backupDir: backupDir, recipients: nil))';")
        try server.stop()
        try server.start()
    }

    /// `backstop wal push`, encrypting to `recipients` (public keys: no secret in the command).
    static func archiveCommand(backupDir: String, recipients: String?) throws -> String {
        (recipients.map { "BACKUP_ENCRYPTION_RECIPIENTS=\($0) " } ?? "") + "\(try BackstopBinary.path()) wal push --backup-dir \(backupDir) %p"
    }

    /// Changes archive_command on a running server (reload): segments completed from now on
    /// are archived encrypted to `recipients`, as when an operator turns encryption on.
    static func encryptArchive(_ server: PostgresServer, backupDir: String, recipients: String) throws {
        try server.psql("ALTER SYSTEM SET archive_command = '\(try archiveCommand(backupDir: backupDir, recipients: recipients))';\nSELECT pg_reload_conf();")
        // The archiver reads the new command on its SIGHUP; give it that moment.
        usleep(700_000)
    }

    /// An `age-keygen`-style identity file, mode 0600; readable by the server's user when the
    /// tests run as root (restore_command runs as `postgres`).
    static func writeKey(_ identity: AgeIdentity, in dir: String, name: String = "key.txt") throws -> String {
        let path = dir + "/" + name
        try Data("# test key\n\(identity.encoded)\n".utf8).write(to: URL(fileURLWithPath: path))
        _ = chmod(path, 0o600)
        if TestEnvironment.isRoot, let pw = getpwnam("postgres") { _ = chown(path, pw.pointee.pw_uid, pw.pointee.pw_gid) }
        return path
    }

    /// The port a started cluster listens on (line 4 of its postmaster.pid).
    static func port(of dataDir: String) throws -> Int {
        let pid = try String(contentsOfFile: dataDir + "/postmaster.pid", encoding: .utf8).split(separator: "\n")
        return Int(pid[3]) ?? 0
    }

    static func waitForFile(_ path: String, timeout: Double = 60) throws {
        try TestEnvironment.waitUntil(timeout: timeout, path) { FileSystem.exists(path) }
    }
}

/// A test PostgreSQL archiving every completed segment through `backstop wal push` into a
/// fresh backup folder (the set-up every archive test starts from), and the clusters a test
/// restored from that archive and started: `shutdown()` stops them, then the server.
final class ArchivingServer: @unchecked Sendable {
    // Only touched by the one test thread that owns it.
    let server: PostgresServer
    let backupDir: String
    /// Data directories of started restores, stopped (immediate) by `shutdown()`.
    var restoredDataDirectories: [String] = []

    init(_ name: String) throws {
        server = try PostgresServer.start(name: name)
        do {
            backupDir = try WalTestSupport.backupDirectory(name)
            try WalTestSupport.enableArchiveCommand(server, backupDir: backupDir)
        } catch {
            server.shutdown()
            throw error
        }
    }

    /// The backup jobs' settings for this server and backup folder.
    func jobSettings() throws -> PostgresJobSettings {
        try PostgresJobSettings(environment: server.environment.merging(["BACKUP_DIR": backupDir]) { $1 }, childEnvironment: server.environment)
    }

    /// A base backup into the backup folder, by the job in this process.
    func baseBackup(log: BackupLog? = nil) throws -> BackupOutcome {
        try PostgresBaseBackup(settings: jobSettings(), log: log ?? BackupLog(backupDir: backupDir, echo: false)).run()
    }

    /// Into table `t(id serial, note text)`: 'before', then — a whole second `target` strictly
    /// after that commit — 'after' and 'last', each followed by a segment switch; returns once
    /// the segment holding 'last' is archived.
    func writeAroundATargetTime() throws -> (beforeSegment: String, target: Double, lastSegment: String) {
        try server.psql("INSERT INTO t(note) VALUES ('before');")
        let beforeSegment = try server.psql("SELECT pg_walfile_name(pg_current_wal_lsn());")
        try server.psql("SELECT pg_switch_wal();")
        let target = ceil(WallClock.now()) + 1
        while WallClock.now() < target + 0.5 { usleep(50_000) }
        try server.psql("INSERT INTO t(note) VALUES ('after');")
        try server.psql("SELECT pg_switch_wal();")
        try server.psql("INSERT INTO t(note) VALUES ('last');")
        let lastSegment = try server.psql("SELECT pg_walfile_name(pg_current_wal_lsn());")
        try server.psql("SELECT pg_switch_wal();")
        try WalTestSupport.waitForFile(WalArchive(backupDir: backupDir).metaPath(lastSegment))
        return (beforeSegment, target, lastSegment)
    }

    func shutdown() {
        for dir in restoredDataDirectories {
            _ = try? TestProcesses.run(server.program("pg_ctl"), ["-D", dir, "-m", "immediate", "-w", "stop"],
                                       asUser: TestEnvironment.isRoot ? "postgres" : nil, check: false)
        }
        server.shutdown()
    }
}

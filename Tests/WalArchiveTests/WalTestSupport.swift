import AgeEncryption
import BackstopCore
import BackstopTestSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Helpers shared by the WAL archive tests.
enum WalTestSupport {
    /// A backup folder the test server's own user can write (archive_command runs as
    /// `postgres` when the tests run as root).
    static func backupDirectory(_ prefix: String) throws -> String {
        let dir = try TestEnvironment.makeTempDirectory(prefix)
        if TestEnvironment.isRoot, let pw = getpwnam("postgres") {
            // The archive folder belongs to the server's user, as it would in a deployment
            // where the PostgreSQL container runs archive_command.
            for sub in ["", "/postgres", "/postgres/wal"] {
                try FileSystem.createDirectory(dir + sub)
                _ = chown(dir + sub, pw.pointee.pw_uid, pw.pointee.pw_gid)
                _ = chmod(dir + sub, 0o777)
            }
        }
        return dir
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

    static func waitForFile(_ path: String, timeout: Double = 60) throws {
        try TestEnvironment.waitUntil(timeout: timeout, path) { FileSystem.exists(path) }
    }
}

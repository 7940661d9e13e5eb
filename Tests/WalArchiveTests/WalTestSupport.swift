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
        let binary = try BackstopBinary.path()
        try server.psql("ALTER SYSTEM SET archive_mode = on;\nALTER SYSTEM SET archive_command = '\(binary) wal push --backup-dir \(backupDir) %p';")
        try server.stop()
        try server.start()
    }

    static func waitForFile(_ path: String, timeout: Double = 60) throws {
        try TestEnvironment.waitUntil(timeout: timeout, path) { FileSystem.exists(path) }
    }
}

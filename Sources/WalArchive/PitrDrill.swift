#if canImport(Glibc)
import Glibc
#endif
import BackstopCore
import BackupCatalog
import BackupJobs
import Foundation

/// `backstop drill --pitr`: proves the base backups and the WAL archive restore to a point in
/// time. Writes a marker row (table `backstop_drill` in the `postgres` database) and a named
/// restore point on the primary *after* the newest base backup, waits until the archive holds
/// that WAL, restores to the restore point into a scratch data directory under `.state/`,
/// starts it on a free loopback port, checks the marker is there, stops it and removes the
/// directory. Blocking.
public struct PitrDrill: Sendable {
    public struct Result: Sendable {
        public var success: Bool
        public var seconds: Double
        public var message: String
    }

    /// The drill kind in restores.json, the state and the metrics.
    public static let kind = "postgres_pitr"

    public let jobSettings: PostgresJobSettings
    public let backstopPath: String
    /// `BACKUP_WAL_RECEIVE_DIR` (nil: the archive's `.receiving/`), for the restore's partial.
    public var receiveDirectory: String?
    let log: BackupLog

    public init(jobSettings: PostgresJobSettings, backstopPath: String, log: BackupLog) {
        self.jobSettings = jobSettings
        self.backstopPath = backstopPath
        self.log = log
    }

    private func psql(_ sql: String, port: Int? = nil) throws -> String {
        var args = ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c", sql]
        if let port { args = ["-h", "127.0.0.1", "-p", String(port)] + args }
        return try ChildProcess.output(jobSettings.program("psql"), args, environment: jobSettings.childEnvironment, scratchDirectory: jobSettings.stateDir)
    }

    public func run(timeout: Double = 600) -> Result {
        let started = WallClock.now()
        let stamp = WallClock.fileStamp(started)
        let marker = "drill_\(stamp)_\(getpid())"
        // The scratch copy lives under the temporary folder, not BACKUP_DIR: BACKUP_DIR's folders
        // are 0750 and the copy's server runs as postgres. `backstop-drill-PID-…` is what the
        // start-up sweep removes after a killed drill.
        // NSTemporaryDirectory() ends with "/": one separator, so errors show a clean path.
        let temporary = String(NSTemporaryDirectory().reversed().drop { $0 == "/" }.reversed())
        var template = Array((temporary + "/backstop-drill-\(getpid())-XXXXXX").utf8CString)
        let scratch = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }.map { String(cString: $0) }
            ?? jobSettings.stateDir + "/drill-pitr-\(stamp)-\(getpid())"
        // Traversable, not listable, by the postgres user; the data folder itself is its own.
        chmod(scratch, 0o711)
        let dataDir = scratch + "/data"
        var restored = false
        defer {
            if restored {
                var argv = [jobSettings.program("pg_ctl"), "-D", dataDir, "-m", "immediate", "-w", "stop"]
                if geteuid() == 0 { argv = ["runuser", "-u", "postgres", "--"] + argv }
                if let child = try? ChildProcess(executable: argv[0], arguments: Array(argv.dropFirst()), captureStdout: false, scratchDirectory: jobSettings.stateDir) {
                    _ = try? child.wait()
                }
            }
            try? FileManager.default.removeItem(atPath: scratch)
        }
        do {
            // Nothing is written on the primary when there is nothing to restore it from.
            guard BackupCatalog(backupDir: jobSettings.backupDir).list(kinds: [.postgresBase]).contains(where: \.isGood) else {
                throw WalArchiveError("no good base backup in \(jobSettings.postgresDir) to restore from; take one with `backstop backup postgres incremental`")
            }
            log.info("drill pitr: marker \(marker) and restore point on the primary")
            // Separate calls: `psql -c` runs its statements as one transaction, and a restore
            // point written inside it would come before the marker's commit.
            _ = try psql("CREATE TABLE IF NOT EXISTS backstop_drill (marker text PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())")
            _ = try psql("INSERT INTO backstop_drill(marker) VALUES ('\(marker)')")
            let lsn = try psql("SELECT pg_create_restore_point('\(marker)')")
            let segment = try psql("SELECT pg_walfile_name('\(lsn)'::pg_lsn);")
            _ = try psql("SELECT pg_switch_wal();")
            let archive = WalArchive(backupDir: jobSettings.backupDir)
            let deadline = WallClock.now() + 120
            while archive.meta(segment) == nil {
                guard WallClock.now() < deadline else { throw WalArchiveError("the archive did not receive \(segment) within 120 s (is pg_receivewal or archive_command running?)") }
                usleep(200_000)
            }
            var options = PointInTimeOptions(target: .name(marker), dataDirectory: dataDir, backstopPath: backstopPath)
            options.action = "promote"
            options.receiveDirectory = receiveDirectory
            let restore = PointInTimeRestore(jobSettings: jobSettings, options: options, say: { log.info("drill pitr: \($0)") })
            let plan = try restore.plan()
            restored = true
            try restore.run(plan)
            let port = try Self.freePort()
            let reached = try RecoveryStart(jobSettings: jobSettings, dataDirectory: dataDir, port: port, say: { log.info("drill pitr: \($0)") })
                .run(plan, action: "promote", timeout: timeout)
            let found = try psql("SELECT count(*) FROM backstop_drill WHERE marker = '\(marker)';", port: port)
            guard found == "1" else { throw WalArchiveError("the restored server (LSN \(reached.lsn)) lacks the marker \(marker) written after the base backup") }
            let seconds = WallClock.now() - started
            log.info("drill pitr: success in \(String(format: "%.1f", seconds)) s: \(FileSystem.lastComponent(of: plan.basePath)) + \(plan.chain.segments.count) WAL segments reached restore point \(marker) (LSN \(reached.lsn))")
            return Result(success: true, seconds: seconds, message: "restore point \(marker) reached")
        } catch {
            let seconds = WallClock.now() - started
            log.error("drill pitr: FAILED after \(String(format: "%.1f", seconds)) s: \(error)")
            return Result(success: false, seconds: seconds, message: "\(error)")
        }
    }

    /// A free loopback TCP port (bound once, then released for the server).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw FileSystemError.errno(errno, "socket", "loopback") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw FileSystemError.errno(errno, "bind", "127.0.0.1:0") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

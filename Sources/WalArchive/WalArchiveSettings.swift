#if canImport(Glibc)
import Glibc
#endif
import BackstopCore

/// How WAL reaches the archive, from the environment:
///
/// - `BACKUP_WAL_ARCHIVE`: `off` (default), `receivewal` (serve supervises pg_receivewal over
///   a replication slot; `true` means the same) or `push` (PostgreSQL's archive_command runs
///   `backstop wal push`; serve only watches the archive and exports its metrics).
/// - `BACKUP_WAL_SLOT` (default `backstop`): the physical replication slot, also the
///   receiver's application_name (what `synchronous_standby_names` must list for RPO 0).
/// - `BACKUP_WAL_SYNCHRONOUS` (default false): pg_receivewal `--synchronous` (flush each write
///   and report it at once, so a synchronous commit waits for the archive).
/// - `BACKUP_WAL_RECEIVE_DIR` (default `$BACKUP_DIR/postgres/wal/.receiving`): the folder
///   pg_receivewal writes into (its `--directory`: the `.partial` segment being received and the
///   segments it completed, until they are archived). The `.partial` is plain WAL even when the
///   archive is encrypted, so with `BACKUP_ENCRYPTION_RECIPIENTS` set it belongs on a volume
///   other than the backup volume (a local disk of the machine, a tmpfs). An absolute path; it
///   may be on another filesystem (completed segments are copied into the archive, never
///   renamed).
public struct WalArchiveSettings: Sendable, Equatable {
    public enum Mode: String, Sendable {
        case off, receivewal, push
    }

    public var mode: Mode
    public var slot: String
    public var synchronous: Bool
    /// `BACKUP_WAL_RECEIVE_DIR`; nil: the default `.receiving/` inside the archive.
    public var receiveDirectory: String?

    public init(environment env: [String: String]) throws {
        let raw = env["BACKUP_WAL_ARCHIVE"]?.trimmingSpaces().lowercased() ?? ""
        switch raw {
        case "", "off", "false", "0", "no": mode = .off
        case "receivewal", "true", "1", "yes", "on": mode = .receivewal
        case "push", "archive_command": mode = .push
        default:
            throw ConfigError(variable: "BACKUP_WAL_ARCHIVE", value: raw,
                              accepted: "off, receivewal (serve runs pg_receivewal; also true) or push (archive_command runs backstop wal push)")
        }
        let slot = env["BACKUP_WAL_SLOT"]?.trimmingSpaces() ?? ""
        self.slot = slot.isEmpty ? "backstop" : slot
        guard (1...63).contains(self.slot.count),
              self.slot.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }) else {
            throw ConfigError(variable: "BACKUP_WAL_SLOT", value: slot, accepted: "a replication slot name: 1 to 63 lowercase letters, digits or _")
        }
        synchronous = try ValueParsers.boolean(env["BACKUP_WAL_SYNCHRONOUS"] ?? "", variable: "BACKUP_WAL_SYNCHRONOUS")
        receiveDirectory = try Self.receiveDirectory(environment: env)
    }

    /// `BACKUP_WAL_RECEIVE_DIR` alone (what `wal fetch --partial` and a restore need, without
    /// the rest of the WAL settings): nil when unset, else the absolute path without a
    /// trailing `/`. A relative path is refused: pg_receivewal, serve and restore_command run
    /// in different working directories.
    public static func receiveDirectory(environment env: [String: String]) throws -> String? {
        let raw = env["BACKUP_WAL_RECEIVE_DIR"]?.trimmingSpaces() ?? ""
        if raw.isEmpty { return nil }
        guard raw.hasPrefix("/") else {
            throw ConfigError(variable: "BACKUP_WAL_RECEIVE_DIR", value: raw,
                              accepted: "an absolute path (starting with /) of the folder pg_receivewal writes the segment being received into")
        }
        let trimmed = String(raw.reversed().drop { $0 == "/" }.reversed())
        return trimmed.isEmpty ? "/" : trimmed
    }

    /// Where pg_receivewal writes for the archive of `backupDir`.
    public func receiveDirectory(backupDir: String) -> String {
        WalArchive(backupDir: backupDir, receiveDirectory: receiveDirectory).stagingDirectory
    }

    /// What serve warns at start when pg_receivewal's plain `.partial` would sit on the backup
    /// volume beside encrypted backups: receiving on, encryption on, and the receive folder
    /// inside `backupDir` (by path, symlinks resolved when the folders exist). nil otherwise.
    public func plaintextReceiveWarning(backupDir: String, encrypting: Bool) -> String? {
        guard mode == .receivewal, encrypting else { return nil }
        let receive = receiveDirectory(backupDir: backupDir)
        func resolved(_ path: String) -> String {
            var probe = path
            var tail: [String] = []
            // The receive folder may not exist yet: resolve its nearest existing parent.
            while !FileSystem.exists(probe), probe != "/", !probe.isEmpty {
                tail.insert(FileSystem.lastComponent(of: probe), at: 0)
                probe = FileSystem.directory(of: probe)
            }
            guard let real = realpath(probe, nil) else { return path }
            defer { free(real) }
            let base = String(cString: real)
            return tail.isEmpty ? base : (base == "/" ? "" : base) + "/" + tail.joined(separator: "/")
        }
        let (inner, outer) = (resolved(receive), resolved(backupDir))
        guard inner == outer || inner.hasPrefix(outer == "/" ? "/" : outer + "/") else { return nil }
        return "BACKUP_ENCRYPTION_RECIPIENTS is set, but pg_receivewal writes the segment it is receiving as plain WAL into \(receive), inside BACKUP_DIR \(backupDir): the backup volume holds unencrypted WAL until each segment is archived. Set BACKUP_WAL_RECEIVE_DIR to a folder on another volume (a local disk or a tmpfs)"
    }
}

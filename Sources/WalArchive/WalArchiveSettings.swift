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
public struct WalArchiveSettings: Sendable, Equatable {
    public enum Mode: String, Sendable {
        case off, receivewal, push
    }

    public var mode: Mode
    public var slot: String
    public var synchronous: Bool

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
    }
}

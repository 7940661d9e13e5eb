import BackstopCore
import BackstopMetrics
import Foundation

/// The time of the last successful restore of each kind, kept in `.state/restores.json` so a
/// `serve` started later still exports `backstop_restore_last_success_timestamp_seconds`
/// (a restore is a one-off command; its process is gone by the next scrape).
public struct RestoreRecord: Codable, Sendable, Equatable {
    /// kind (`postgres_full`, `redis`) → Unix time the restore finished.
    public var lastSuccess: [String: Double]
    /// kind → Unix time the last successful restore drill finished.
    public var drillLastSuccess: [String: Double]
    /// kind → seconds the last successful drill took (the measured recovery time).
    public var drillDuration: [String: Double]
    /// kind → Unix time the last drill finished, good or not.
    public var drillLastAttempt: [String: Double]
    /// kind → why the last drill failed; absent when it succeeded.
    public var drillLastError: [String: String]

    enum CodingKeys: String, CodingKey {
        case lastSuccess = "last_success"
        case drillLastSuccess = "drill_last_success"
        case drillDuration = "drill_duration_seconds"
        case drillLastAttempt = "drill_last_attempt"
        case drillLastError = "drill_last_error"
    }

    public init(lastSuccess: [String: Double] = [:], drillLastSuccess: [String: Double] = [:], drillDuration: [String: Double] = [:],
                drillLastAttempt: [String: Double] = [:], drillLastError: [String: String] = [:]) {
        self.lastSuccess = lastSuccess
        self.drillLastSuccess = drillLastSuccess
        self.drillDuration = drillDuration
        self.drillLastAttempt = drillLastAttempt
        self.drillLastError = drillLastError
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        lastSuccess = try c.decodeIfPresent([String: Double].self, forKey: .lastSuccess) ?? [:]
        drillLastSuccess = try c.decodeIfPresent([String: Double].self, forKey: .drillLastSuccess) ?? [:]
        drillDuration = try c.decodeIfPresent([String: Double].self, forKey: .drillDuration) ?? [:]
        drillLastAttempt = try c.decodeIfPresent([String: Double].self, forKey: .drillLastAttempt) ?? [:]
        drillLastError = try c.decodeIfPresent([String: String].self, forKey: .drillLastError) ?? [:]
    }

    public static func path(backupDir: String) -> String { backupDir + "/.state/restores.json" }

    /// The kinds `backstop drill` restores (their drill series always exist).
    public static let drilledKinds = ["postgres_full", "redis"]

    /// The drilled kinds plus any other kind this record holds a drill of (`postgres_pitr`,
    /// recorded once the WAL archive's drill ran), so each has its series and its alert.
    public var drillKinds: [String] {
        let others = Set(drillLastAttempt.keys).union(drillLastSuccess.keys).subtracting(Self.drilledKinds)
        return Self.drilledKinds + others.sorted()
    }

    /// The record on disk; empty when there is none or it cannot be read.
    public static func load(backupDir: String) -> RestoreRecord {
        guard let bytes = try? FileSystem.read(path(backupDir: backupDir)),
              let record = try? JSONDecoder().decode(RestoreRecord.self, from: Data(bytes)) else { return RestoreRecord() }
        return record
    }

    /// Adds a success and writes the record atomically.
    public static func recordSuccess(kind: String, at time: Double, backupDir: String) throws {
        var record = load(backupDir: backupDir)
        record.lastSuccess[kind] = time
        try record.write(backupDir: backupDir)
    }

    /// Adds a drill, good (`error` nil: its time and duration become the last success) or
    /// failed (the last success stays), and writes the record atomically.
    public static func recordDrill(kind: String, at time: Double, seconds: Double, error: String? = nil, backupDir: String) throws {
        var record = load(backupDir: backupDir)
        record.drillLastAttempt[kind] = time
        if let error {
            record.drillLastError[kind] = error
        } else {
            record.drillLastError[kind] = nil
            record.drillLastSuccess[kind] = time
            record.drillDuration[kind] = seconds
        }
        try record.write(backupDir: backupDir)
    }

    /// Whether the last drill of `kind` succeeded; nil when none ran.
    public func drillLastRunSucceeded(_ kind: String) -> Bool? {
        guard drillLastAttempt[kind] != nil || drillLastSuccess[kind] != nil else { return nil }
        return drillLastError[kind] == nil
    }

    func write(backupDir: String) throws {
        let record = self
        try FileSystem.createDirectory(backupDir + "/.state")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(Array(try encoder.encode(record)) + [10], to: RestoreRecord.path(backupDir: backupDir), mode: 0o640)
    }

    /// Declares the restore families and sets them from the record on disk.
    public static func loadMetrics(into registry: MetricsRegistry, backupDir: String) {
        load(backupDir: backupDir).publish(into: registry)
    }

    /// Renders the record into the restore families (the registry is written, never read).
    public func publish(into registry: MetricsRegistry) {
        Family.declareRestore(in: registry)
        for (kind, time) in lastSuccess {
            registry.set(Family.restoreLastSuccess, ["kind": kind], time)
        }
        for kind in drillKinds {
            registry.set(Family.restoreDrillLastSuccess, ["kind": kind], drillLastSuccess[kind] ?? 0)
            registry.set(Family.restoreDrillDuration, ["kind": kind], drillDuration[kind] ?? 0)
            registry.set(Family.restoreDrillLastAttempt, ["kind": kind], drillLastAttempt[kind] ?? drillLastSuccess[kind] ?? 0)
            registry.set(Family.restoreDrillLastRunSuccess, ["kind": kind], drillLastRunSucceeded(kind) == true ? 1 : 0)
        }
    }
}

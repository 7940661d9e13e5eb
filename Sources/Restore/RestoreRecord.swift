import BackstopCore
import BackstopMetrics
import Foundation

/// The time of the last successful restore of each kind, kept in `.state/restores.json` so a
/// `serve` started later still exports `backstop_restore_last_success_timestamp_seconds`
/// (a restore is a one-off command; its process is gone by the next scrape).
public struct RestoreRecord: Codable, Sendable, Equatable {
    /// kind (`postgres_full`, `redis`) → Unix time the restore finished.
    public var lastSuccess: [String: Double]

    enum CodingKeys: String, CodingKey {
        case lastSuccess = "last_success"
    }

    public init(lastSuccess: [String: Double] = [:]) { self.lastSuccess = lastSuccess }

    public static func path(backupDir: String) -> String { backupDir + "/.state/restores.json" }

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
        try FileSystem.createDirectory(backupDir + "/.state")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(Array(try encoder.encode(record)) + [10], to: path(backupDir: backupDir), mode: 0o640)
    }

    /// Declares the restore families and sets them from the record (serve calls this at
    /// start-up and may call it again after each scrape interval).
    public static func loadMetrics(into registry: MetricsRegistry, backupDir: String) {
        Family.declareRestore(in: registry)
        for (kind, time) in load(backupDir: backupDir).lastSuccess {
            registry.set(Family.restoreLastSuccess, ["kind": kind], time)
        }
    }
}

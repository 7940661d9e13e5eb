import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The rows of README's reliability table, written by the tests that produce them, so the table
/// says what the last run saw rather than what someone remembered.
///
/// Each row is one JSON line appended (one `write` on an `O_APPEND` descriptor, so test
/// processes never interleave) to `$BACKSTOP_RELIABILITY_REPORT`, by default
/// `.build/reliability/rows.jsonl` under the package. `scripts/reliability-table.sh` renders the
/// file as the Markdown table; `scripts/test.sh` starts the run with an empty file and prints
/// the table at the end.
public enum ReliabilityReport {
    /// One fault, what Backstop did about it, and what was lost (the tests assert "nothing").
    public struct Row: Codable, Sendable, Equatable {
        public var fault: String
        public var did: String
        public var lost: String
        /// The test file that observed it, so a reader can find the assertion behind the row.
        public var source: String
    }

    public static var path: String {
        if let p = ProcessInfo.processInfo.environment["BACKSTOP_RELIABILITY_REPORT"], !p.isEmpty { return p }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/reliability/rows.jsonl").path
    }

    /// Records a row. Call it after the assertions that prove it, with the figures measured in
    /// this run (times, counts, sizes) in the text, never a hard-coded claim.
    public static func record(fault: String, did: String, lost: String, fileID: String = #fileID) {
        let row = Row(fault: fault, did: did, lost: lost, source: fileID)
        guard var line = try? JSONEncoder().encode(row) else { return }
        line.append(0x0A)
        let file = path
        try? FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }
}

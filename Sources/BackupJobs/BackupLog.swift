import BackstopCore
import Logging
import Foundation

/// The backup log: every line goes to `$BACKUP_DIR/logs/backup.log` (as the old scripts'
/// did) and to stdout. `progress` lines go to a terminal only, overwritten in place.
public final class BackupLog: Sendable {
    public let file: String
    public let echo: Bool
    public let isTerminal: Bool

    public init(backupDir: String, echo: Bool = true) {
        file = backupDir + "/logs/backup.log"
        self.echo = echo
        isTerminal = isatty(1) == 1
    }

    public func info(_ message: String) { line(.info, message) }
    public func error(_ message: String) { line(.error, message) }

    /// In the format of serve's own log lines (`LineLogHandler.format`, label
    /// `backstop.backup`), so a job's lines read the same from the CLI and from serve.
    private func line(_ level: Logger.Level, _ message: String) {
        let text = LineLogHandler.format(level: level, label: BackstopLogging.backupLabel, message: message)
        try? LogFile.append(text, to: file)
        if echo {
            let out = (isTerminal ? "\r\u{1b}[K" : "") + text
            FileHandle.standardOutput.write(Data(out.utf8))
        }
    }

    /// A progress line (bytes so far, rate) on a terminal; nothing otherwise.
    public func progress(_ label: String, bytesIn: UInt64, bytesOut: UInt64, seconds: Double) {
        guard echo, isTerminal else { return }
        let rate = seconds > 0 ? Double(bytesIn) / seconds : 0
        let text = "\r\u{1b}[K  \(label): \(HumanBytes.format(bytesIn)) read, \(HumanBytes.format(bytesOut)) written, \(HumanBytes.format(UInt64(rate)))/s"
        FileHandle.standardOutput.write(Data(text.utf8))
    }
}

/// "12.3 MiB" style sizes for humans (logs, list).
public enum HumanBytes {
    public static func format(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 { return "\(bytes) B" }
        // Not String(format:): this runs once per row of a 100,000-backup listing.
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) " + units[unit]
    }
}

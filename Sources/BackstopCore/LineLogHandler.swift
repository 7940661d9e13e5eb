#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#else
import Darwin
#endif
public import Logging

/// A swift-log handler that writes one line per event to stdout (or stderr) and, when a file
/// is given, appends the same line to it (`logs/backup.log`, `logs/health.log`, the files the
/// old scripts wrote) through `LogFile`, which rotates it and keeps lines from concurrent jobs
/// and processes whole.
public struct LineLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String
    private let filePath: String?
    private let toStderr: Bool

    public init(label: String, level: Logger.Level, filePath: String?, toStderr: Bool = false) {
        self.label = label
        self.logLevel = level
        self.filePath = filePath
        self.toStderr = toStderr
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let line = Self.format(level: event.level, label: label, message: "\(event.message)", metadata: merged)
        let bytes = Array(line.utf8)
        bytes.withUnsafeBytes { raw in
            _ = write(toStderr ? 2 : 1, raw.baseAddress, raw.count)
        }
        if let filePath {
            try? LogFile.append(line, to: filePath)
        }
    }

    /// The one line format of Backstop's logs, `<RFC 3339 time> <level> <label>: <message>
    /// key=value…` with a newline: the job lines (`BackupLog`) and swift-log's use it, so
    /// `backup.log` reads the same whichever wrote a line.
    public static func format(level: Logger.Level, label: String, message: String, metadata: Logger.Metadata = [:],
                              time: Double = WallClock.now()) -> String {
        var line = "\(WallClock.rfc3339(time, fractional: true)) \(level) \(label): \(message)"
        for key in metadata.keys.sorted() {
            line += " \(key)=\(quote("\(metadata[key]!)"))"
        }
        return line + "\n"
    }

    private static func quote(_ value: String) -> String {
        value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" }) ? "\"\(value.replacingAll("\"", with: "\\\""))\"" : value
    }
}

extension String {
    /// Replaces every occurrence of `target` (Foundation-free).
    public func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = self[...]
        while let range = rest.range(of: target) {
            out += rest[..<range.lowerBound]
            out += replacement
            rest = rest[range.upperBound...]
        }
        return out + rest
    }
}

extension Substring {
    fileprivate func range(of needle: String) -> Range<Index>? {
        guard !needle.isEmpty, count >= needle.count else { return nil }
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(needle) {
                return i..<index(i, offsetBy: needle.count)
            }
            i = index(after: i)
        }
        return nil
    }
}

/// The logging set-up every subcommand shares.
public enum BackstopLogging {
    /// Logger labels whose lines are also appended to a file under `logs/`, as the old scripts
    /// did: job output to `backup.log`, the health loop to `health.log`.
    public static let backupLabel = "backstop.backup"
    public static let healthLabel = "backstop.health"

    /// Points swift-log at `LineLogHandler`. `files` maps a logger label to the file that gets
    /// a copy of its lines. Only the first call in a process takes effect (swift-log's rule).
    public static func bootstrap(level: String, files: [String: String] = [:], toStderr: Bool = false) {
        let parsed = Logger.Level(rawValue: level) ?? .info
        LoggingSystem.bootstrap { label in
            LineLogHandler(label: label, level: parsed, filePath: files[label], toStderr: toStderr)
        }
    }

    /// The usual mapping for a backup folder.
    public static func standardFiles(backupDir: String) -> [String: String] {
        [backupLabel: backupDir + "/logs/backup.log", healthLabel: backupDir + "/logs/health.log"]
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#else
import Darwin
#endif
import BackstopCore

/// `$BACKUP_DIR/alerts.json` and `$BACKUP_DIR/logs/health.log`: the file sink. The JSON file
/// exists only while alerts fire and is replaced atomically, so a reader (the old scripts'
/// consumers, `cat`, a file-based monitor) never sees half a file; every change of the firing
/// set is one line per alert in the log.
public struct AlertsFile: Sendable {
    public var path: String
    public var logPath: String
    public var generatorURL: String

    public init(backupDir: String, generatorURL: String = "") {
        path = backupDir + "/alerts.json"
        logPath = backupDir + "/logs/health.log"
        self.generatorURL = generatorURL
    }

    /// Brings the file in line with `changes.firing` and logs `started`/`resolved`. With
    /// `force`, the file is rewritten even without a change (the first evaluation after a
    /// start, which must not trust a file left by an earlier run). Blocking (fsync): call it
    /// off the cooperative pool.
    public func apply(_ changes: AlertChanges, force: Bool = false) throws {
        for line in Self.logLines(changes) {
            try FileSystem.appendLine(line, to: logPath)
        }
        guard changes.hasChanges || force else { return }
        if changes.firing.isEmpty {
            if unlink(path) != 0, errno != ENOENT {
                throw FileSystemError.errno(errno, "unlink", path)
            }
            FileSystem.syncDirectory(FileSystem.directory(of: path))
        } else {
            try AtomicFile.write(try JSONCoding.encode(AlertPayloads.alertsFile(changes.firing, generatorURL: generatorURL), newline: true), to: path)
        }
    }

    /// The alerts a previous run left firing, so a restart keeps their `startsAt` and still
    /// reports the ones that resolved while Backstop was down. A missing file is no alerts;
    /// an unreadable one is an error (the caller logs it and starts empty).
    public func readFiring() throws -> [TrackedAlert] {
        guard FileSystem.exists(path) else { return [] }
        return try JSONCoding.decode([Restored].self, from: try FileSystem.read(path)).compactMap(\.alert)
    }

    /// One element of `alerts.json` as a previous run wrote it; nil when it is not an alert
    /// (no labels with an alertname, no readable startsAt), which is skipped, not an error.
    private struct Restored: Decodable {
        enum Key: String, CodingKey { case labels, annotations, startsAt }
        var alert: TrackedAlert?

        init(from decoder: any Decoder) throws {
            guard let object = try? decoder.container(keyedBy: Key.self),
                  let labels = try? object.decode([String: String].self, forKey: .labels), labels["alertname"] != nil,
                  let startsAt = (try? object.decode(String.self, forKey: .startsAt)).flatMap(WallClock.parseRFC3339) else { return }
            let annotations = (try? object.decodeIfPresent([String: String].self, forKey: .annotations)) ?? [:]
            alert = TrackedAlert(alert: Alert(labels: labels, annotations: annotations), status: .firing, startsAt: startsAt)
        }
    }

    /// `<time> FIRING|RESOLVED <alertname> severity=… <labels> fingerprint=… summary="…"`.
    public static func logLines(_ changes: AlertChanges) -> [String] {
        let stamp = WallClock.rfc3339(changes.time, fractional: true)
        func line(_ word: String, _ a: TrackedAlert, _ extra: String) -> String {
            let labels = a.labels.keys.sorted().filter { $0 != "alertname" }.map { "\($0)=\(quote(a.labels[$0]!))" }
            return ([stamp, word, a.name] + labels + ["fingerprint=\(a.fingerprint)"] + (extra.isEmpty ? [] : [extra])
                + ["summary=\(quote(a.alert.summary))"]).joined(separator: " ")
        }
        return changes.started.map { line("FIRING", $0, "") }
            + changes.resolved.map { line("RESOLVED", $0, "fired_for=\(Human.duration(($0.endsAt ?? changes.time) - $0.startsAt).replacingAll(" ", with: ""))") }
    }

    static func quote(_ v: String) -> String {
        v.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" }) ? "\"" + v.replacingAll("\"", with: "\\\"") + "\"" : v
    }
}

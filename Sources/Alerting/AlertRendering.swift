import BackstopCore

/// Text and JSON for `backstop health` (table lines, `--json`).
public enum AlertRendering {
    /// One line per alert: severity, name, labels, since, summary; "no alerts firing" when empty.
    public static func render(_ alerts: [TrackedAlert]) -> String {
        guard !alerts.isEmpty else { return "no alerts firing\n" }
        let rows = alerts.map { a -> [String] in
            let labels = a.labels.keys.sorted().filter { $0 != "alertname" && $0 != "severity" }.map { "\($0)=\(a.labels[$0]!)" }
            return [a.severity.rawValue.uppercased(), a.name, labels.joined(separator: ","), WallClock.rfc3339(a.startsAt), a.alert.summary]
        }
        let header = ["SEVERITY", "ALERT", "LABELS", "SINCE", "SUMMARY"]
        var widths = header.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < 4 { widths[i] = max(widths[i], cell.count) }
        }
        func format(_ row: [String]) -> String {
            row.enumerated().map { i, cell in
                i < 4 ? cell + String(repeating: " ", count: widths[i] - cell.count) : cell
            }.joined(separator: "  ")
        }
        return ([format(header)] + rows.map(format)).joined(separator: "\n") + "\n"
    }

    /// Alerts from a single evaluation (no history): `startsAt` is the evaluation time.
    public static func render(_ alerts: [Alert], at now: Double) -> String {
        render(alerts.map { TrackedAlert(alert: $0, status: .firing, startsAt: now) })
    }

    /// The array as a value, to embed in a larger `--json` document (`"alerts": …`).
    public static func jsonValue(_ alerts: [TrackedAlert], generatorURL: String = "") -> [AlertPayloads.AlertBody] {
        AlertPayloads.alertsFile(alerts, generatorURL: generatorURL)
    }

    public static func jsonValue(_ alerts: [Alert], at now: Double, generatorURL: String = "") -> [AlertPayloads.AlertBody] {
        jsonValue(alerts.map { TrackedAlert(alert: $0, status: .firing, startsAt: now) }, generatorURL: generatorURL)
    }

    /// The same array `alerts.json` holds.
    public static func json(_ alerts: [TrackedAlert], generatorURL: String = "") -> String {
        // An array of string fields and maps: encoding it cannot fail.
        ((try? JSONCoding.text(AlertPayloads.alertsFile(alerts, generatorURL: generatorURL))) ?? "[]") + "\n"
    }

    public static func json(_ alerts: [Alert], at now: Double, generatorURL: String = "") -> String {
        json(alerts.map { TrackedAlert(alert: $0, status: .firing, startsAt: now) }, generatorURL: generatorURL)
    }
}

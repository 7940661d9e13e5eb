import BackstopCore

extension HealthReport {
    /// The table `backstop health` prints: one line per check, status, detail.
    public func renderTable() -> String {
        var rows: [(String, String, String)] = []
        rows.append(("postgres \(postgres.target)", postgres.up ? "up" : "DOWN",
                     postgres.up ? "\(postgres.server), PostgreSQL \(postgres.version ?? "?")\(postgres.inRecovery == true ? " (standby)" : "")"
                                 : (postgres.error ?? "no answer")))
        for r in redis {
            rows.append(("redis \(r.role)", r.up ? "up" : "DOWN",
                         r.up ? "\(r.address), Redis \(r.version ?? "?"), reports role \(r.reportedRole ?? "?")" : "\(r.address): \(r.error ?? "no answer")"))
        }
        if let s = sentinel {
            for node in s.sentinels {
                rows.append(("sentinel \(node.address)", node.up ? "up" : "DOWN",
                             node.up ? "names master \(node.reportedMaster?.description ?? "none")" : (node.error ?? "no answer")))
            }
            rows.append(("sentinel \(s.masterName)", s.healthy ? "ok" : "DEGRADED",
                         "master \(s.master?.description ?? "unknown")\(s.agree ? "" : " (sentinels disagree)"), quorum \(s.quorumOK ? "ok" : "NOT reachable"), \(s.knownSentinels) sentinels, \(s.knownReplicas) replicas"))
        }
        rows.append(("disk \(disk.path)", disk.error == nil ? "ok" : "ERROR",
                     disk.error ?? "\(Self.bytes(disk.freeBytes)) free of \(Self.bytes(disk.totalBytes)) (\(Self.fixed(disk.freePercent, 1))%)"))
        let w0 = max(5, rows.map(\.0.count).max() ?? 0)
        let w1 = max(6, rows.map(\.1.count).max() ?? 0)
        func pad(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: max(0, w - s.count)) }
        var out = "\(pad("CHECK", w0))  \(pad("STATUS", w1))  DETAIL\n"
        for r in rows { out += "\(pad(r.0, w0))  \(pad(r.1, w1))  \(r.2)\n" }
        return out
    }

    /// A JSON object for `backstop health --json`.
    public func jsonObject() -> JSONValue {
        var object: [String: JSONValue] = [
            "checked_at": .string(WallClock.rfc3339(checkedAt)),
            "ok": .bool(allUp),
            "postgres": .object([
                "target": .string(postgres.target), "server": .string(postgres.server), "up": .bool(postgres.up),
                "version": postgres.version.map(JSONValue.string) ?? .null,
                "in_recovery": postgres.inRecovery.map(JSONValue.bool) ?? .null,
                "error": postgres.error.map(JSONValue.string) ?? .null,
            ]),
            "redis": .array(redis.map { r in
                .object([
                    "address": .string(r.address), "role": .string(r.role), "up": .bool(r.up),
                    "reported_role": r.reportedRole.map(JSONValue.string) ?? .null,
                    "version": r.version.map(JSONValue.string) ?? .null,
                    "error": r.error.map(JSONValue.string) ?? .null,
                ])
            }),
            "disk": .object([
                "path": .string(disk.path), "total_bytes": .number(disk.totalBytes), "free_bytes": .number(disk.freeBytes),
                "free_percent": .number(disk.freePercent), "error": disk.error.map(JSONValue.string) ?? .null,
            ]),
        ]
        if let s = sentinel {
            object["sentinel"] = .object([
                "master_name": .string(s.masterName),
                "master": s.master.map { .string($0.description) } ?? .null,
                "agree": .bool(s.agree), "quorum_ok": .bool(s.quorumOK),
                "quorum_message": s.quorumMessage.map(JSONValue.string) ?? .null,
                "known_sentinels": .number(Double(s.knownSentinels)), "known_replicas": .number(Double(s.knownReplicas)),
                "sentinels": .array(s.sentinels.map { n in
                    .object([
                        "address": .string(n.address.description), "up": .bool(n.up),
                        "reported_master": n.reportedMaster.map { .string($0.description) } ?? .null,
                        "error": n.error.map(JSONValue.string) ?? .null,
                    ])
                }),
            ])
        } else {
            object["sentinel"] = .null
        }
        return .object(object)
    }

    static func bytes(_ value: Double) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var v = value
        var i = 0
        while v >= 1024, i < units.count - 1 {
            v /= 1024
            i += 1
        }
        return i == 0 ? "\(Int(v)) B" : "\(fixed(v, 1)) \(units[i])"
    }

    static func fixed(_ v: Double, _ digits: Int) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let r = (v * scale).rounded() / scale
        var s = "\(r)"
        if let dot = s.firstIndex(of: ".") {
            let decimals = s.distance(from: dot, to: s.endIndex) - 1
            if decimals < digits { s += String(repeating: "0", count: digits - decimals) }
        }
        return s
    }
}

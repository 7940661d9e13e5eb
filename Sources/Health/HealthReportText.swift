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

    /// The object `backstop health --json` prints (the command adds `alerts` and may turn
    /// `ok` false). Every key is present; an unknown value is `null`.
    public struct JSON: Encodable, Sendable {
        public struct Postgres: Encodable, Sendable {
            var target: String, server: String, up: Bool
            var version: JSONCoding.OrNull<String>, in_recovery: JSONCoding.OrNull<Bool>, error: JSONCoding.OrNull<String>
        }
        public struct Redis: Encodable, Sendable {
            var address: String, role: String, up: Bool
            var reported_role: JSONCoding.OrNull<String>, version: JSONCoding.OrNull<String>, error: JSONCoding.OrNull<String>
        }
        public struct Disk: Encodable, Sendable {
            var path: String, total_bytes: Int64, free_bytes: Int64, free_percent: Double, error: JSONCoding.OrNull<String>
        }
        public struct SentinelNode: Encodable, Sendable {
            var address: String, up: Bool, reported_master: JSONCoding.OrNull<String>, error: JSONCoding.OrNull<String>
        }
        public struct Sentinel: Encodable, Sendable {
            var master_name: String, master: JSONCoding.OrNull<String>, agree: Bool, quorum_ok: Bool
            var quorum_message: JSONCoding.OrNull<String>, known_sentinels: Int, known_replicas: Int, sentinels: [SentinelNode]
        }
        public var checked_at: String
        public var ok: Bool
        public var postgres: Postgres
        public var redis: [Redis]
        public var disk: Disk
        public var sentinel: JSONCoding.OrNull<Sentinel>
    }

    /// The object for `backstop health --json`.
    public func json() -> JSON {
        typealias S = JSONCoding.OrNull<String>
        return JSON(
            checked_at: WallClock.rfc3339(checkedAt), ok: allUp,
            postgres: .init(target: postgres.target, server: postgres.server, up: postgres.up, version: S(postgres.version),
                            in_recovery: .init(postgres.inRecovery), error: S(postgres.error)),
            redis: redis.map { r in
                .init(address: r.address, role: r.role, up: r.up, reported_role: S(r.reportedRole), version: S(r.version), error: S(r.error))
            },
            disk: .init(path: disk.path, total_bytes: Int64(disk.totalBytes), free_bytes: Int64(disk.freeBytes),
                        free_percent: disk.freePercent, error: S(disk.error)),
            sentinel: .init(sentinel.map { s in
                .init(master_name: s.masterName, master: S(s.master?.description), agree: s.agree, quorum_ok: s.quorumOK,
                      quorum_message: S(s.quorumMessage), known_sentinels: s.knownSentinels, known_replicas: s.knownReplicas,
                      sentinels: s.sentinels.map { n in
                          .init(address: n.address.description, up: n.up, reported_master: S(n.reportedMaster?.description), error: S(n.error))
                      })
            }))
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

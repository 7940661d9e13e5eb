import BackstopCore

/// What `ROLE` says a server is.
public enum RedisRole: Sendable, Equatable {
    /// A master with its replication offset and connected replicas.
    case master(offset: Int64, replicas: [Endpoint])
    /// A replica of `master`; `state` is `connect`, `connecting`, `sync` or `connected`.
    case replica(master: Endpoint, state: String, offset: Int64)
    /// A Sentinel and the masters it monitors.
    case sentinel(masters: [String])

    /// `master`, `replica` or `sentinel` — the label value the metrics use.
    public var name: String {
        switch self {
        case .master: return "master"
        case .replica: return "replica"
        case .sentinel: return "sentinel"
        }
    }
}

/// One `dbN:keys=…,expires=…,avg_ttl=…` line of `INFO keyspace`.
public struct KeyspaceCounts: Sendable, Equatable, Codable {
    public var keys: Int
    public var expires: Int
    public init(keys: Int, expires: Int) {
        self.keys = keys
        self.expires = expires
    }
}

/// The answer of `SENTINEL CKQUORUM`: `+OK 3 usable Sentinels…` or `-NOQUORUM …`.
public struct QuorumCheck: Sendable, Equatable {
    public var ok: Bool
    /// The Sentinel's own words, e.g. `OK 3 usable Sentinels. Quorum and failover authorization can be reached`.
    public var message: String
    public init(ok: Bool, message: String) {
        self.ok = ok
        self.message = message
    }
}

/// The fields of `SENTINEL MASTER <name>` that the health loop uses, plus all of them raw.
public struct SentinelMasterState: Sendable, Equatable {
    public var fields: [String: String]
    public init(fields: [String: String]) { self.fields = fields }

    public var address: Endpoint? {
        guard let ip = fields["ip"], let port = fields["port"].flatMap({ Int($0) }) else { return nil }
        return Endpoint(host: ip, port: port)
    }
    public var flags: [String] { (fields["flags"] ?? "").split(separator: ",").map(String.init) }
    /// `s_down`/`o_down` in the flags: this Sentinel considers the master down.
    public var isDown: Bool { flags.contains("s_down") || flags.contains("o_down") }
    public var numOtherSentinels: Int? { fields["num-other-sentinels"].flatMap { Int($0) } }
    public var numReplicas: Int? { fields["num-slaves"].flatMap { Int($0) } }
    public var quorum: Int? { fields["quorum"].flatMap { Int($0) } }
    public var failoverInProgress: Bool { flags.contains("failover_in_progress") }
}

/// A finished `BGSAVE`, as `INFO persistence` reports it.
public struct BackgroundSave: Sendable, Equatable {
    /// `rdb_last_save_time`: when the save completed (Unix seconds).
    public var lastSaveTime: Int64
    /// `rdb_last_bgsave_time_sec`: how long the fork took to write the file.
    public var durationSeconds: Int
    /// `rdb_saves` after the save (Redis 7+; nil on older servers).
    public var saves: Int64?
}

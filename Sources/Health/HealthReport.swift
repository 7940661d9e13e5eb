import BackstopCore

/// What one round of health probes found. A plain value: the health loop produces it, the
/// metrics, `backstop health` and the alert evaluator read it.
public struct HealthReport: Sendable {
    public var checkedAt: Double
    public var postgres: PostgresStatus
    public var redis: [RedisServerStatus]
    /// Present when Sentinel is configured.
    public var sentinel: SentinelStatus?
    public var disk: DiskStatus

    public init(checkedAt: Double, postgres: PostgresStatus, redis: [RedisServerStatus], sentinel: SentinelStatus?, disk: DiskStatus) {
        self.checkedAt = checkedAt
        self.postgres = postgres
        self.redis = redis
        self.sentinel = sentinel
        self.disk = disk
    }

    /// True when every probed thing answered and the disk is readable.
    public var allUp: Bool {
        postgres.up && redis.allSatisfy(\.up) && (sentinel?.healthy ?? true) && disk.error == nil
    }
}

public struct PostgresStatus: Sendable {
    /// The database probed (the `target` label).
    public var target: String
    public var server: String
    public var up: Bool
    public var version: String?
    public var inRecovery: Bool?
    public var error: String?
}

public struct RedisServerStatus: Sendable {
    public var address: String
    /// `master` or `replica`, as configured/named by Sentinel (the role we expect).
    public var role: String
    public var up: Bool
    /// The role the server itself reports (`INFO replication`), when up.
    public var reportedRole: String?
    public var version: String?
    public var error: String?
}

public struct SentinelStatus: Sendable {
    public var masterName: String
    public var sentinels: [SentinelNodeStatus]
    /// The master address the answering sentinels agree on, if they agree.
    public var master: Endpoint?
    /// All answering sentinels name the same master, and at least one answered.
    public var agree: Bool
    public var quorumOK: Bool
    public var quorumMessage: String?
    public var knownSentinels: Int
    public var knownReplicas: Int

    /// Every sentinel up, all agree, quorum reachable.
    public var healthy: Bool {
        agree && quorumOK && sentinels.allSatisfy(\.up)
    }
}

public struct SentinelNodeStatus: Sendable {
    public var address: Endpoint
    public var up: Bool
    public var reportedMaster: Endpoint?
    public var error: String?
}

public struct DiskStatus: Sendable {
    public var path: String
    public var totalBytes: Double
    public var freeBytes: Double
    public var error: String?

    public var freePercent: Double {
        totalBytes > 0 ? freeBytes / totalBytes * 100 : 0
    }
}

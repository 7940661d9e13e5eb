import AgeEncryption
import BackstopCore
import BackupPipeline
import Foundation

/// What the Redis backup job needs from the environment.
///
/// - `BACKUP_DIR` (default /backups), `BACKUP_COMPRESSION_LEVEL` 1–9
/// - `REDIS_HOST`/`REDIS_PORT`, `REDIS_USERNAME`, `REDIS_PASSWORD`, `REDIS_SENTINELS`,
///   `REDIS_SENTINEL_MASTER`, `REDIS_SENTINEL_PASSWORD` (shared with the health loop)
/// - `BACKUP_REDIS_METHOD` = `replication` (default) | `bgsave`
/// - `BACKUP_REDIS_SOURCE` = `master` (default) | `replica`
/// - `BACKUP_REDIS_REPLICA` = host:port, the replica to use without Sentinel
/// - `REDIS_DATA_DIR`: the folder Redis saves its RDB in, as this process sees it (bgsave only)
/// - `BACKUP_REDIS_RETRIES` (0–10, default 2), `BACKUP_REDIS_RETRY_DELAY` (default 2s)
/// - `BACKUP_REDIS_TIMEOUT` (default 30s): connect and every wait for data
public struct RedisJobSettings: Sendable {
    /// How the snapshot is taken.
    public enum Method: String, Sendable, CaseIterable {
        /// `SYNC` over the replication protocol, streamed straight into the pipeline.
        case replication
        /// `BGSAVE`, then the RDB file read from `REDIS_DATA_DIR`.
        case bgsave
    }

    /// Which server gives the snapshot.
    public enum Source: String, Sendable, CaseIterable {
        case master
        /// A replica in sync with the master: spares the master the fork.
        case replica
    }

    public var backupDir: String
    public var redis: RedisSettings
    public var compressionLevel: Int32
    /// `BACKUP_ENCRYPTION_RECIPIENTS(_FILE)`: when set, snapshots are age-encrypted (`.rdb.gz.age`).
    public var encryption: EncryptionSettings
    public var method: Method
    public var source: Source
    /// `BACKUP_REDIS_REPLICA`: the replica when `source == .replica` and no Sentinel is used.
    public var replica: Endpoint?
    /// `REDIS_DATA_DIR`: required for `bgsave`.
    public var dataDirectory: String?
    /// Further attempts after a failed one (each re-resolves the master).
    public var retries: Int
    /// Seconds between attempts.
    public var retryDelay: Double
    /// Seconds for the connect and for every wait for data.
    public var timeout: Double
    /// Seconds from `SYNC` (or `BGSAVE`) until the snapshot is ready.
    public var snapshotStartTimeout: Double

    public init(environment env: [String: String]) throws {
        let config = try BackstopConfig(environment: env)
        backupDir = config.backupDir
        redis = config.redis
        compressionLevel = try CompressionSettings.level(environment: env)
        encryption = try EncryptionSettings(environment: env)
        func value(_ name: String) -> String? {
            guard let v = env[name]?.trimmingSpaces(), !v.isEmpty else { return nil }
            return v
        }
        if let raw = value("BACKUP_REDIS_METHOD") {
            guard let method = Method(rawValue: raw.lowercased()) else {
                throw ConfigError(variable: "BACKUP_REDIS_METHOD", value: raw, accepted: "replication or bgsave")
            }
            self.method = method
        } else {
            method = .replication
        }
        if let raw = value("BACKUP_REDIS_SOURCE") {
            guard let source = Source(rawValue: raw.lowercased()) else {
                throw ConfigError(variable: "BACKUP_REDIS_SOURCE", value: raw, accepted: "master or replica")
            }
            self.source = source
        } else {
            source = .master
        }
        replica = try value("BACKUP_REDIS_REPLICA").map {
            try ValueParsers.endpoint($0, variable: "BACKUP_REDIS_REPLICA", defaultPort: 6379)
        }
        if source == .replica, !redis.usesSentinel, replica == nil {
            throw ConfigError(variable: "BACKUP_REDIS_REPLICA", value: "",
                              accepted: "host:port of a replica when BACKUP_REDIS_SOURCE=replica and REDIS_SENTINELS is not set")
        }
        dataDirectory = value("REDIS_DATA_DIR")
        if method == .bgsave, dataDirectory == nil {
            throw ConfigError(variable: "REDIS_DATA_DIR", value: "",
                              accepted: "the folder Redis writes its RDB file to, mounted here, when BACKUP_REDIS_METHOD=bgsave")
        }
        retries = try value("BACKUP_REDIS_RETRIES").map { try ValueParsers.integer($0, variable: "BACKUP_REDIS_RETRIES", in: 0...10) } ?? 2
        retryDelay = try value("BACKUP_REDIS_RETRY_DELAY").map { Self.seconds(try ValueParsers.duration($0, variable: "BACKUP_REDIS_RETRY_DELAY")) } ?? 2
        timeout = try value("BACKUP_REDIS_TIMEOUT").map { Self.seconds(try ValueParsers.duration($0, variable: "BACKUP_REDIS_TIMEOUT")) } ?? 30
        snapshotStartTimeout = 600
    }

    /// The metrics/attempts target: the Sentinel master name, or `host:port` without Sentinel.
    public var target: String { redis.usesSentinel ? redis.sentinelMasterName : redis.master.description }

    public var redisDir: String { backupDir + "/redis" }
    public var stateDir: String { backupDir + "/.state" }
    public var locksDir: String { backupDir + "/.locks" }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

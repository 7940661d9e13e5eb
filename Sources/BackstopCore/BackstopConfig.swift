/// Everything `backstop` reads from its environment, parsed and checked once at start-up.
///
/// The environment is the container convention and the old scripts' interface, so every
/// setting has a variable; command-line flags override by writing the same variable before
/// parsing, which keeps one code path and one error message per setting.
public struct BackstopConfig: Sendable {
    /// Where backups, logs, the inventory and alerts.json live (`BACKUP_DIR`).
    public var backupDir: String
    /// Address of the `/metrics` server (`METRICS_LISTEN`).
    public var metricsListen: Endpoint
    /// How often the health loop probes (`HEALTH_CHECK_INTERVAL`).
    public var healthInterval: Duration
    /// How long one probe may take before it counts as down (`HEALTH_PROBE_TIMEOUT`).
    public var probeTimeout: Duration
    public var postgres: PostgresSettings
    public var redis: RedisSettings
    /// Free-space levels for DiskSpaceLow, in percent of the file system holding `backupDir`.
    public var diskFreeWarningPercent: Double
    public var diskFreeCriticalPercent: Double
    public var logLevel: String
    /// When `logs/*.log` rotate (`BACKUP_LOG_MAX_BYTES`, `BACKUP_LOG_KEEP`, `BACKUP_LOG_MAX_AGE`).
    public var logRotation: LogRotation

    public static let defaultMetricsPort = 9847

    /// Parses `environment`; throws the first `ConfigError` found.
    public init(environment env: [String: String]) throws {
        func value(_ name: String) -> String? {
            guard let v = env[name], !v.trimmingSpaces().isEmpty else { return nil }
            return v
        }
        backupDir = value("BACKUP_DIR") ?? "/backups"
        guard backupDir.hasPrefix("/") || backupDir.hasPrefix(".") || !backupDir.contains("\0") else {
            throw ConfigError(variable: "BACKUP_DIR", value: backupDir, accepted: "a folder path")
        }
        metricsListen = try value("METRICS_LISTEN").map {
            try ValueParsers.endpoint($0, variable: "METRICS_LISTEN")
        } ?? Endpoint(host: "0.0.0.0", port: Self.defaultMetricsPort)
        healthInterval = try value("HEALTH_CHECK_INTERVAL").map {
            try ValueParsers.duration($0, variable: "HEALTH_CHECK_INTERVAL")
        } ?? .seconds(300)
        probeTimeout = try value("HEALTH_PROBE_TIMEOUT").map {
            try ValueParsers.duration($0, variable: "HEALTH_PROBE_TIMEOUT")
        } ?? .seconds(5)
        postgres = try PostgresSettings(environment: env)
        redis = try RedisSettings(environment: env)
        diskFreeWarningPercent = try value("DISK_FREE_WARNING_PERCENT").map {
            try ValueParsers.percent($0, variable: "DISK_FREE_WARNING_PERCENT")
        } ?? 15
        diskFreeCriticalPercent = try value("DISK_FREE_CRITICAL_PERCENT").map {
            try ValueParsers.percent($0, variable: "DISK_FREE_CRITICAL_PERCENT")
        } ?? 5
        guard diskFreeCriticalPercent <= diskFreeWarningPercent else {
            throw ConfigError(
                variable: "DISK_FREE_CRITICAL_PERCENT", value: env["DISK_FREE_CRITICAL_PERCENT"] ?? "5",
                accepted: "a percentage no larger than DISK_FREE_WARNING_PERCENT (\(diskFreeWarningPercent))")
        }
        let level = (value("LOG_LEVEL") ?? "info").lowercased()
        let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
        guard levels.contains(level) else {
            throw ConfigError(variable: "LOG_LEVEL", value: env["LOG_LEVEL"] ?? "", accepted: "one of \(levels.joined(separator: ", "))")
        }
        logLevel = level
        logRotation = try LogRotation(environment: env)
    }

    public var logsDir: String { backupDir + "/logs" }
}

/// How to reach PostgreSQL. libpq reads PGHOST, PGPORT, PGUSER, PGPASSWORD and PGPASSFILE
/// itself (and child programs inherit them), so only what Backstop decides on is kept here.
public struct PostgresSettings: Sendable {
    /// The database probed and dumped by default (`PGDATABASE`, default `psscript`).
    public var database: String
    /// Human-readable server address for logs and labels; never includes credentials.
    public var displayHost: String

    public init(environment env: [String: String]) throws {
        let db = env["PGDATABASE"]?.trimmingSpaces() ?? ""
        database = db.isEmpty ? "psscript" : db
        let host = env["PGHOST"]?.trimmingSpaces() ?? ""
        let port = env["PGPORT"]?.trimmingSpaces() ?? ""
        if !port.isEmpty {
            _ = try ValueParsers.integer(port, variable: "PGPORT", in: 1...65535)
        }
        displayHost = (host.isEmpty ? "local socket" : host) + (port.isEmpty ? "" : ":\(port)")
    }
}

/// How to reach Redis: a fixed master, or the master Sentinel names.
public struct RedisSettings: Sendable {
    /// `REDIS_HOST`/`REDIS_PORT`: the master when no Sentinel is configured.
    public var master: Endpoint
    public var username: String?
    public var password: Secret?
    /// `REDIS_SENTINELS`: empty means Sentinel is not used.
    public var sentinels: [Endpoint]
    /// `REDIS_SENTINEL_MASTER` (default `mymaster`).
    public var sentinelMasterName: String
    /// `REDIS_SENTINEL_PASSWORD`, when the sentinels require one.
    public var sentinelPassword: Secret?

    public init(environment env: [String: String]) throws {
        func value(_ name: String) -> String? {
            guard let v = env[name], !v.trimmingSpaces().isEmpty else { return nil }
            return v
        }
        let host = value("REDIS_HOST")?.trimmingSpaces() ?? "redis-master"
        let port = try value("REDIS_PORT").map { try ValueParsers.integer($0, variable: "REDIS_PORT", in: 1...65535) } ?? 6379
        master = Endpoint(host: host, port: port)
        username = value("REDIS_USERNAME")
        password = env["REDIS_PASSWORD"].flatMap { $0.isEmpty ? nil : Secret($0) }
        sentinels = try value("REDIS_SENTINELS").map {
            try ValueParsers.endpointList($0, variable: "REDIS_SENTINELS", defaultPort: 26379)
        } ?? []
        let name = value("REDIS_SENTINEL_MASTER")?.trimmingSpaces() ?? "mymaster"
        guard !name.contains(where: { $0 == " " }) else {
            throw ConfigError(variable: "REDIS_SENTINEL_MASTER", value: name, accepted: "a master name without spaces, as in sentinel.conf")
        }
        sentinelMasterName = name
        sentinelPassword = env["REDIS_SENTINEL_PASSWORD"].flatMap { $0.isEmpty ? nil : Secret($0) }
    }

    public var usesSentinel: Bool { !sentinels.isEmpty }
}

/// Everything the alert rules look at, as plain values. The health loop fills it from its
/// probes and the catalog; the rules never do I/O, so they are deterministic and testable.
///
/// Include every *configured* thing, also when nothing has happened yet: a backup kind and
/// target with no good backup on record is a `BackupFacts` with `lastSuccess == nil` (and
/// BackupStale fires for it). Optional parts (`sentinel`, `s3`, `walArchive`) are nil when the
/// feature is not configured, and their rules stay silent.
public struct HealthSnapshot: Sendable, Equatable {
    /// Unix seconds of the evaluation; ages are measured from here.
    public var time: Double
    public var postgres: [PostgresFacts]
    public var redis: [RedisFacts]
    public var sentinel: SentinelFacts?
    public var disks: [DiskFacts]
    public var backups: [BackupFacts]
    public var s3: S3Facts?
    public var walArchive: WalArchiveFacts?
    public var restoreDrills: [RestoreDrillFacts]
    /// BACKUP_ENCRYPTION_RECIPIENTS is set: every new backup must be encrypted.
    public var encryptionConfigured = false

    public init(time: Double, postgres: [PostgresFacts] = [], redis: [RedisFacts] = [], sentinel: SentinelFacts? = nil,
                disks: [DiskFacts] = [], backups: [BackupFacts] = [], s3: S3Facts? = nil,
                walArchive: WalArchiveFacts? = nil, restoreDrills: [RestoreDrillFacts] = []) {
        self.time = time
        self.postgres = postgres
        self.redis = redis
        self.sentinel = sentinel
        self.disks = disks
        self.backups = backups
        self.s3 = s3
        self.walArchive = walArchive
        self.restoreDrills = restoreDrills
    }
}

/// One PostgreSQL probe. `target` is the database (the `target` label of backstop_postgres_up).
public struct PostgresFacts: Sendable, Equatable {
    public var target: String
    public var up: Bool
    /// Where it was probed (host:port), for the description; never credentials.
    public var address: String?
    /// The probe's error, when down (no secrets: the probe's errors are redacted).
    public var error: String?

    public init(target: String, up: Bool, address: String? = nil, error: String? = nil) {
        self.target = target
        self.up = up
        self.address = address
        self.error = error
    }
}

/// One Redis server probe (labels of backstop_redis_up).
public struct RedisFacts: Sendable, Equatable {
    public var address: String
    /// `master` or `replica` (RedisDown is critical for a master).
    public var role: String
    public var up: Bool
    public var error: String?

    public init(address: String, role: String, up: Bool, error: String? = nil) {
        self.address = address
        self.role = role
        self.up = up
        self.error = error
    }
}

/// What the Sentinels said about one master.
public struct SentinelFacts: Sendable, Equatable {
    public var masterName: String
    /// Every configured Sentinel and whether it answered.
    public var sentinels: [SentinelNodeFacts]
    /// The distinct master addresses the answering Sentinels named (for the description).
    public var reportedMasters: [String]
    /// False when answering Sentinels name different masters.
    public var mastersAgree: Bool
    /// Result of SENTINEL CKQUORUM on an answering Sentinel; nil when none answered.
    public var quorumOK: Bool?
    /// Sentinels watching the master as an answering Sentinel counts them (itself included).
    public var knownSentinels: Int?

    /// `mastersAgree` defaults to "`reportedMasters` holds at most one distinct address".
    public init(masterName: String, sentinels: [SentinelNodeFacts], reportedMasters: [String], quorumOK: Bool?,
                knownSentinels: Int?, mastersAgree: Bool? = nil) {
        self.masterName = masterName
        self.sentinels = sentinels
        self.reportedMasters = reportedMasters
        self.mastersAgree = mastersAgree ?? (Set(reportedMasters).count <= 1)
        self.quorumOK = quorumOK
        self.knownSentinels = knownSentinels
    }
}

public struct SentinelNodeFacts: Sendable, Equatable {
    public var address: String
    public var up: Bool
    public var error: String?

    public init(address: String, up: Bool, error: String? = nil) {
        self.address = address
        self.up = up
        self.error = error
    }
}

/// Size and free space of the file system holding a path (backstop_disk_*_bytes).
public struct DiskFacts: Sendable, Equatable {
    public var path: String
    public var totalBytes: UInt64
    public var freeBytes: UInt64

    public init(path: String, totalBytes: UInt64, freeBytes: UInt64) {
        self.path = path
        self.totalBytes = totalBytes
        self.freeBytes = freeBytes
    }

    public var freePercent: Double { totalBytes == 0 ? 100 : Double(freeBytes) / Double(totalBytes) * 100 }
}

/// The catalog's view of one backup kind and target (backstop_backup_last_* families).
public struct BackupFacts: Sendable, Equatable {
    /// `postgres_full`, `postgres_base`, `redis`.
    public var kind: String
    public var target: String
    /// Unix seconds the newest good backup finished; nil when none is on record.
    public var lastSuccess: Double?
    /// Unix seconds the newest attempt started; nil when it never ran.
    public var lastAttempt: Double?
    /// Whether the newest attempt succeeded; nil when it never ran.
    public var lastRunSucceeded: Bool?
    /// The newest failed attempt's error, for the description.
    public var lastError: String?
    /// Whether the newest good backup is age-encrypted; nil when there is none.
    public var encrypted: Bool?

    public init(kind: String, target: String, lastSuccess: Double? = nil, lastAttempt: Double? = nil,
                lastRunSucceeded: Bool? = nil, lastError: String? = nil, encrypted: Bool? = nil) {
        self.encrypted = encrypted
        self.kind = kind
        self.target = target
        self.lastSuccess = lastSuccess
        self.lastAttempt = lastAttempt
        self.lastRunSucceeded = lastRunSucceeded
        self.lastError = lastError
    }
}

/// S3 upload state (only when S3 is configured).
public struct S3Facts: Sendable, Equatable {
    /// Uploads that failed since the last one that succeeded.
    public var consecutiveFailures: Int
    public var lastFailure: Double?
    public var lastSuccess: Double?
    public var lastError: String?
    /// Bucket (and prefix) for the description.
    public var destination: String?

    public init(consecutiveFailures: Int, lastFailure: Double? = nil, lastSuccess: Double? = nil, lastError: String? = nil, destination: String? = nil) {
        self.consecutiveFailures = consecutiveFailures
        self.lastFailure = lastFailure
        self.lastSuccess = lastSuccess
        self.lastError = lastError
        self.destination = destination
    }
}

/// Continuous WAL archiving (only when configured).
public struct WalArchiveFacts: Sendable, Equatable {
    /// Unix seconds the newest complete segment arrived in the archive; nil when none has.
    public var lastSegmentTime: Double?
    /// Archive folder, for the description.
    public var path: String?
    /// Bytes of WAL each replication slot makes the server keep (backstop_replication_slot_retained_bytes).
    public var slotRetainedBytes: [String: Double] = [:]

    public init(lastSegmentTime: Double?, path: String? = nil, slotRetainedBytes: [String: Double] = [:]) {
        self.lastSegmentTime = lastSegmentTime
        self.path = path
        self.slotRetainedBytes = slotRetainedBytes
    }
}

/// Restore drills of one kind (only when drills are configured).
public struct RestoreDrillFacts: Sendable, Equatable {
    public var kind: String
    public var lastSuccess: Double?
    public var lastAttempt: Double?
    public var lastRunSucceeded: Bool?
    public var lastError: String?

    public init(kind: String, lastSuccess: Double? = nil, lastAttempt: Double? = nil, lastRunSucceeded: Bool? = nil, lastError: String? = nil) {
        self.kind = kind
        self.lastSuccess = lastSuccess
        self.lastAttempt = lastAttempt
        self.lastRunSucceeded = lastRunSucceeded
        self.lastError = lastError
    }
}

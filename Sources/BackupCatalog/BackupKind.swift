/// What a backup is. The raw values are the metrics contract's `kind` label (globals are
/// part of a full PostgreSQL backup run and share its kind).
public enum BackupKind: String, Codable, Sendable, CaseIterable {
    case postgresFull = "postgres_full"
    case postgresGlobals = "postgres_globals"
    case postgresBase = "postgres_base"
    case redis

    /// The kind label used in metrics (`postgres_globals` counts as `postgres_full`).
    public var metricKind: String { self == .postgresGlobals ? BackupKind.postgresFull.rawValue : rawValue }

    /// The `.meta` `type` field the old scripts wrote.
    public var legacyType: String {
        switch self {
        case .postgresFull: "full"
        case .postgresGlobals: "globals"
        case .postgresBase: "incremental"
        case .redis: "redis"
        }
    }

    /// The sub-folder of `$BACKUP_DIR`.
    public var folder: String { self == .redis ? "redis" : "postgres" }
}

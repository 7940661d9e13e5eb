import BackstopMetrics

/// The WAL archive's metric families (DESIGN.md's contract, named in `Family`). Declared only
/// when the archive is on (BACKUP_WAL_ARCHIVE), then always present, 0 until something happened.
public enum WalMetrics {
    public static func declare(in registry: MetricsRegistry, receiver: Bool) {
        for family in [Family.walArchiveLastSegment, .walArchiveLagBytes, .walArchiveLagSeconds, .recoveryWindowStart, .recoveryWindowEnd] {
            registry.declare(family)
            registry.set(family, [:], 0)
        }
        registry.declare(Family.replicationSlotRetained)
        if receiver {
            registry.declare(Family.walReceiverUp)
            registry.declare(Family.walReceiverRestarts)
            registry.set(Family.walReceiverUp, [:], 0)
            registry.add(Family.walReceiverRestarts, [:], 0)
        }
    }
}

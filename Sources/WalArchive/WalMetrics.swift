import BackstopMetrics

/// The WAL archive's metric families (DESIGN.md's contract). Declared only when the archive
/// is on (BACKUP_WAL_ARCHIVE), then always present, 0 until something happened.
public enum WalMetrics {
    public static let lastSegment = "backstop_wal_archive_last_segment_timestamp_seconds"
    public static let lagBytes = "backstop_wal_archive_lag_bytes"
    public static let lagSeconds = "backstop_wal_archive_lag_seconds"
    public static let receiverUp = "backstop_wal_receiver_up"
    public static let receiverRestarts = "backstop_wal_receiver_restarts_total"
    public static let slotRetained = "backstop_replication_slot_retained_bytes"
    public static let windowStart = "backstop_recovery_window_start_timestamp_seconds"
    public static let windowEnd = "backstop_recovery_window_end_timestamp_seconds"

    public static func declare(in registry: MetricsRegistry, receiver: Bool) {
        registry.declare(lastSegment, .gauge, help: "When the newest WAL segment reached the archive (0: none yet).")
        registry.declare(lagBytes, .gauge, help: "Bytes of WAL the server has written that are not durable in the archive yet.")
        registry.declare(lagSeconds, .gauge, help: "Seconds the archive is behind the server (0 when it has everything).")
        registry.declare(slotRetained, .gauge, help: "Bytes of WAL a replication slot makes the server keep (current LSN minus the slot's restart LSN).", labels: ["slot"])
        registry.declare(windowStart, .gauge, help: "The earliest time a point-in-time restore can reach: the end of the oldest base backup with a continuous WAL chain (0: none).")
        registry.declare(windowEnd, .gauge, help: "The latest time a point-in-time restore can reach: the newest WAL in the archive (0: none).")
        for name in [lastSegment, lagBytes, lagSeconds, windowStart, windowEnd] { registry.set(name, [:], 0) }
        if receiver {
            registry.declare(receiverUp, .gauge, help: "1 while pg_receivewal runs under serve.")
            registry.declare(receiverRestarts, .counter, help: "Times pg_receivewal was restarted after it ended.")
            registry.set(receiverUp, [:], 0)
            registry.add(receiverRestarts, [:], 0)
        }
    }
}

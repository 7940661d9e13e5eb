import Alerting
import BackstopCore
import BackstopMetrics
import BackupJobs
import Foundation
import Health
import Restore
import S3
import Scheduling

/// The one typed store of what Backstop knows. Jobs, probes, uploads and drills write it; the
/// metrics (a view rendered on every change), the alert evaluator (woken by every change),
/// the scheduler's catch-up and `backstop health` read it. Its persisted part is the disk
/// itself — the catalog's `.meta` files and `.state/` (attempts, uploads, restores), written
/// atomically by the jobs — so another Backstop process (a CLI backup beside serve) changes
/// it too: `refreshFromDisk()` (each health round) picks that up.
public actor StateStore {
    /// What changed, for subscribers that care (the evaluator re-reads the whole state).
    public enum Change: Sendable, Equatable {
        case backups, health, uploads, restores, walArchive
    }

    public nonisolated let backupDir: String
    private let expected: [BackupMetrics.Expected]
    private let s3Destination: String?
    private let metrics: MetricsRegistry?
    private var state: ServiceState
    private var subscribers: [Int: AsyncStream<Change>.Continuation] = [:]
    private var nextSubscriber = 0

    /// Reads the state from the disk (blocking reads, off the cooperative pool) and, with
    /// `metrics`, renders it there.
    public static func open(backupDir: String, expected: [BackupMetrics.Expected], s3Destination: String?,
                            encryptionConfigured: Bool = false, metrics: MetricsRegistry?) async -> StateStore {
        var state = await Blocking.run { Self.read(backupDir: backupDir, expected: expected, s3Destination: s3Destination) }
        state.encryptionConfigured = encryptionConfigured
        return StateStore(backupDir: backupDir, expected: expected, s3Destination: s3Destination, metrics: metrics, state: state)
    }

    private init(backupDir: String, expected: [BackupMetrics.Expected], s3Destination: String?, metrics: MetricsRegistry?, state: ServiceState) {
        self.backupDir = backupDir
        self.expected = expected
        self.s3Destination = s3Destination
        self.metrics = metrics
        self.state = state
        if let metrics {
            StateMetrics.declare(in: metrics, s3: s3Destination != nil)
            StateMetrics.render(state, into: metrics)
        }
    }

    /// The current state.
    public var current: ServiceState { state }

    /// A stream of changes from now on (buffering the newest few: a slow reader re-reads the
    /// whole state anyway). Ends when the subscriber's task is cancelled.
    public func changes() -> AsyncStream<Change> {
        let (stream, continuation) = AsyncStream.makeStream(of: Change.self, bufferingPolicy: .bufferingNewest(8))
        let id = nextSubscriber
        nextSubscriber += 1
        subscribers[id] = continuation
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            Task { await self.unsubscribe(id) }
        }
        return stream
    }

    private func unsubscribe(_ id: Int) { subscribers[id] = nil }

    private func publish(_ change: Change) {
        if let metrics { StateMetrics.render(state, into: metrics) }
        for continuation in subscribers.values { continuation.yield(change) }
    }

    /// The outcomes of a backup run (already in `.state/attempts.json` and the catalog).
    public func recordBackups(_ outcomes: [BackupOutcome]) {
        guard !outcomes.isEmpty else { return }
        for outcome in outcomes {
            let kind = outcome.kind.metricKind
            if let i = state.backups.firstIndex(where: { $0.kind == kind && $0.target == outcome.target }) {
                state.backups[i].apply(outcome)
            } else {
                var status = BackupStatus(kind: kind, target: outcome.target)
                status.apply(outcome)
                state.backups.append(status)
                state.backups.sort { ($0.kind, $0.target) < ($1.kind, $1.target) }
            }
            if let metrics { BackupMetrics.count(outcome, into: metrics) }
        }
        publish(.backups)
    }

    /// A finished round of probes.
    public func recordHealth(_ report: HealthReport) {
        state.health = report
        if let metrics { report.apply(to: metrics) }
        publish(.health)
    }

    /// The upload state an upload run just wrote (this process's or another's).
    public func recordUploads(_ uploads: S3UploadState) {
        guard s3Destination != nil else { return }
        state.uploads = uploads
        publish(.uploads)
    }

    /// The WAL upload state an upload run just wrote.
    public func recordWalUploads(_ uploads: WalUploadState?) {
        guard s3Destination != nil, uploads != state.walUploads else { return }
        state.walUploads = uploads
        publish(.uploads)
    }

    /// The restore record a restore or a drill just wrote.
    public func recordRestores(_ record: RestoreRecord) {
        state.restores = record
        publish(.restores)
    }

    /// The WAL archive's newest facts.
    public func recordWalArchive(_ facts: WalArchiveFacts?) {
        state.walArchive = facts
        publish(.walArchive)
    }

    /// Re-reads what other processes may have changed — backups taken or removed by
    /// `backstop backup`/`cleanup` or the old cron scripts, uploads, restores, drills — and
    /// publishes what differs. Serve calls it every health round.
    public func refreshFromDisk() async {
        let (backupDir, expected, destination) = (self.backupDir, self.expected, self.s3Destination)
        let fresh = await Blocking.run { Self.read(backupDir: backupDir, expected: expected, s3Destination: destination) }
        if fresh.backups != state.backups {
            state.backups = fresh.backups
            publish(.backups)
        }
        if fresh.uploads != state.uploads || fresh.walUploads != state.walUploads {
            state.uploads = fresh.uploads
            state.walUploads = fresh.walUploads
            publish(.uploads)
        }
        if fresh.restores != state.restores {
            state.restores = fresh.restores
            publish(.restores)
        }
    }

    /// The newest success of the kind `job` makes, for the scheduler's catch-up at start-up.
    public func lastSuccess(job: String) -> LastSuccess {
        if job == "drill" {
            // An overdue drill runs at start-up; one never run waits for its slot (a new
            // deployment has nothing to drill yet).
            return state.oldestDrillAttempt.map { .at(Date(timeIntervalSince1970: $0)) } ?? .unknown
        }
        guard let kind = JobKinds.backupKind(job: job) else { return .unknown }
        guard let oldest = state.oldestLastSuccess(kind: kind), oldest > 0 else { return .never }
        return .at(Date(timeIntervalSince1970: oldest))
    }

    /// The snapshot the alert rules evaluate: nil until the first probe round finished
    /// (without probes, PostgresDown and the others could not be told from "resolved").
    public func snapshot(at time: Double = WallClock.now()) -> HealthSnapshot? {
        state.health.map { state.snapshot(report: $0, time: time) }
    }

    /// Blocking: the catalog, `.state/attempts.json`, `s3_uploads.json`, `restores.json`.
    static func read(backupDir: String, expected: [BackupMetrics.Expected], s3Destination: String?) -> ServiceState {
        var state = ServiceState(backups: BackupStatus.load(backupDir: backupDir, expected: expected),
                                 uploads: s3Destination == nil ? nil : S3UploadState.load(backupDir: backupDir),
                                 s3Destination: s3Destination,
                                 restores: RestoreRecord.load(backupDir: backupDir))
        state.walUploads = s3Destination == nil ? nil : WalUploadState.load(backupDir: backupDir)
        return state
    }
}

import BackstopCore
import BackstopMetrics
import BackupCatalog
import BackupPipeline
import Dispatch
import Foundation
import RedisClient
import Synchronization

/// `backstop backup redis`: one RDB snapshot of the current master (as Sentinel names it, or
/// `REDIS_HOST:PORT`) — or of a replica in sync with it — streamed through the one pipeline
/// (`BackupFileWriter`) into `redis/redis_STAMP.rdb.gz`, then its `.meta`.
///
/// The snapshot only counts when it is whole: the RDB header and the CRC-64 at its end are
/// checked while it streams (both methods). Any failure — a refused SYNC, a connection cut
/// part-way, a failover that demotes the source, a bad checksum — removes the temporary
/// file; the attempt is retried (`BACKUP_REDIS_RETRIES`, after `BACKUP_REDIS_RETRY_DELAY`),
/// each retry asking Sentinel for the master again, so a failover sends it to the new one.
/// The final result is recorded like the PostgreSQL jobs' (attempts record, metrics, log).
///
/// Blocking: run it on a thread that may block (`Blocking.run`), never the cooperative pool.
public struct RedisSnapshotBackup: Sendable {
    public let settings: RedisJobSettings
    public let log: BackupLog
    public let metrics: MetricsRegistry?
    public let cancellation: JobCancellation?

    /// - Parameter cancellation: set it (e.g. on SIGTERM) to abort the run: the transfer stops
    ///   at the next chunk, the temporary file is removed, no retry follows.
    public init(settings: RedisJobSettings, log: BackupLog, metrics: MetricsRegistry? = nil,
                cancellation: JobCancellation? = nil) {
        self.settings = settings
        self.log = log
        self.metrics = metrics
        self.cancellation = cancellation
    }

    /// Runs the job. Throws `FileLock.Held` when another run holds the job's lock; otherwise
    /// returns the outcome (failed ones included; `message` lists every attempt's error).
    public func run() throws -> BackupOutcome {
        let lock = try FileLock(path: settings.locksDir + "/redis.lock", purpose: "backup redis")
        defer { lock.release() }
        try FileSystem.createDirectory(settings.redisDir)
        StaleFiles.removePartials(in: settings.redisDir) { $0.hasPrefix("redis_") }
        let started = WallClock.now()
        let suffix = settings.encryption.isEnabled ? ".age" : ""
        let stamp = StaleFiles.freeStamp(startingAt: started, in: settings.redisDir) { ["redis_\($0).rdb.gz\(suffix)"] }
        let file = "redis_\(stamp).rdb.gz\(suffix)"
        let destination = settings.redisDir + "/" + file
        let target = settings.target
        let via = settings.redis.usesSentinel ? "Sentinel master \(settings.redis.sentinelMasterName)" : settings.redis.master.description
        log.info("redis \(target): started (method \(settings.method.rawValue), from the \(settings.source.rawValue) of \(via), gzip level \(settings.compressionLevel)) → \(destination)")

        var errors: [String] = []
        var attempt = 0
        var outcome: BackupOutcome
        while true {
            attempt += 1
            do {
                try cancellation?.check()
                let snapshot = try snapshotOnce(destination: destination)
                let finished = WallClock.now()
                let meta = makeMeta(snapshot, file: file, started: started, finished: finished)
                do {
                    try meta.write(forData: destination)
                } catch {
                    // A data file without its .meta is not a backup: remove it.
                    unlink(destination)
                    throw BackupJobError("writing \(BackupMeta.path(for: destination)) failed: \(error); the snapshot was removed")
                }
                let written = snapshot.written
                outcome = BackupOutcome(kind: .redis, target: target, path: destination, success: true, startedAt: started,
                                        finishedAt: finished, sizeBytes: written.sizeBytes, sha256: written.sha256, message: nil)
                log.info("redis \(target): success, \(HumanBytes.format(written.sizeBytes)) (\(HumanBytes.format(written.uncompressedBytes)) RDB) in \(String(format: "%.1f", finished - started)) s from \(snapshot.source) (\(snapshot.sourceRole)), master \(snapshot.master), RDB version \(snapshot.rdbVersion), checksum \(snapshot.checksum), keys \(snapshot.keyspace.values.map(\.keys).reduce(0, +)), sha256 \(written.sha256)")
                break
            } catch {
                let finished = WallClock.now()
                errors.append(attempt == 1 && (error is BackupCancelled || settings.retries == 0) ? "\(error)" : "attempt \(attempt): \(error)")
                let cancelled = error is BackupCancelled || cancellation?.isCancelled == true
                if !cancelled, attempt <= settings.retries {
                    log.error("redis \(target): attempt \(attempt) of \(settings.retries + 1) failed: \(error); retrying in \(String(format: "%g", settings.retryDelay)) s (the master is asked for again)")
                    if sleepUnlessCancelled(settings.retryDelay) { continue }
                }
                outcome = BackupOutcome(kind: .redis, target: target, path: nil, success: false, startedAt: started,
                                        finishedAt: finished, sizeBytes: 0, sha256: nil, message: errors.joined(separator: "; "),
                                        interrupted: cancellation?.isCancelled == true)
                log.error("redis \(target): \(outcome.interrupted ? "INTERRUPTED" : "FAILED") after \(String(format: "%.1f", finished - started)) s (\(attempt) attempt\(attempt == 1 ? "" : "s")): \(error)")
                break
            }
        }
        BackupRecorder.record(outcome, backupDir: settings.backupDir, metrics: metrics, log: log)
        return outcome
    }

    // MARK: One attempt

    /// A snapshot in place under its final name, and what it came from.
    struct Snapshot {
        var written: WrittenFile
        var master: Endpoint
        var source: Endpoint
        var sourceRole: String
        var redisVersion: String?
        var rdbVersion: Int
        var checksum: String
        var keyspace: [Int: KeyspaceCounts]
    }

    private func snapshotOnce(destination: String) throws -> Snapshot {
        let master = try resolveMaster()
        let source: Endpoint
        switch settings.source {
        case .master: source = master
        case .replica: source = try chooseReplica(of: master)
        }
        let connection = try RedisConnection(to: source, username: settings.redis.username,
                                             password: settings.redis.password, timeout: settings.timeout)
        // Facts taken right before the snapshot, and proof the source is what it should be:
        // a master that a failover has just demoted must not be backed up as "the master".
        let info = try connection.info()
        let role = info["role"] ?? "unknown"
        switch settings.source {
        case .master:
            guard role == "master" else {
                throw BackupJobError("\(source) is not a master (role \(role)): a failover is under way, or "
                    + (settings.redis.usesSentinel ? "the Sentinels name a stale master" : "REDIS_HOST/REDIS_PORT name a replica"))
            }
        case .replica:
            guard role == "slave", info["master_link_status"] == "up" else {
                throw BackupJobError("\(source) is not a replica in sync (role \(role), master_link_status \(info["master_link_status"] ?? "-")); "
                    + "its snapshot would be stale")
            }
        }
        let keyspace = RedisConnection.parseKeyspace(info)
        let version = info["redis_version"]
        let label = settings.target
        let summary: (rdbVersion: Int, checksum: RDBValidator.Checksum)
        let writer = try BackupFileWriter(destination: destination, compressionLevel: settings.compressionLevel,
                                          recipients: settings.encryption.recipients)
        do {
            let t0 = MonotonicClock.seconds()
            var lastProgress = t0
            let cancellation = self.cancellation
            let log = self.log
            let consume: (UnsafeRawBufferPointer) throws -> Void = { chunk in
                try cancellation?.check()
                try writer.write(chunk)
                let now = MonotonicClock.seconds()
                if now - lastProgress >= 1 {
                    lastProgress = now
                    log.progress(label, bytesIn: writer.uncompressedBytes, bytesOut: writer.compressedBytes, seconds: now - t0)
                }
            }
            switch settings.method {
            case .replication:
                let info = try fetchSnapshot(from: source, username: settings.redis.username, password: settings.redis.password,
                                             timeout: settings.timeout,
                                             options: SnapshotOptions(allowDiskless: false, startTimeout: settings.snapshotStartTimeout),
                                             shouldContinue: { cancellation?.isCancelled != true }, sink: consume)
                summary = (info.rdbVersion, info.checksum)
            case .bgsave:
                let dbfilename = (try? connection.configGet("dbfilename"))?["dbfilename"].flatMap { $0.isEmpty ? nil : $0 } ?? "dump.rdb"
                let save = try connection.bgsave(timeout: settings.snapshotStartTimeout,
                                                 shouldContinue: { cancellation?.isCancelled != true })
                let checked = try streamFile(FileSystem.lastComponent(of: dbfilename), savedAt: save.lastSaveTime, into: consume)
                summary = (checked.rdbVersion, checked.checksum)
            }
            if settings.source == .master { try confirmStillMaster(source) }
        } catch is CancellationError {
            writer.abort()
            throw BackupCancelled()
        } catch {
            writer.abort()
            throw error
        }
        let written = try writer.finish()
        let checksum: String
        switch summary.checksum {
        case .verified: checksum = "verified"
        case .disabled: checksum = "disabled"
        }
        return Snapshot(written: written, master: master, source: source,
                        sourceRole: settings.source == .master ? "master" : "replica", redisVersion: version,
                        rdbVersion: summary.rdbVersion, checksum: checksum, keyspace: keyspace)
    }

    /// Reads the RDB file BGSAVE just wrote from `REDIS_DATA_DIR`, checking it as it streams.
    private func streamFile(_ name: String, savedAt: Int64, into consume: (UnsafeRawBufferPointer) throws -> Void) throws -> RDBValidator.Summary {
        let directory = settings.dataDirectory ?? "."
        let path = directory + "/" + name
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw BackupJobError("opening \(path) failed: \(String(cString: strerror(errno))); REDIS_DATA_DIR must be the folder "
                + "Redis saves \(name) in (its CONFIG GET dir), as mounted in this container")
        }
        defer { close(fd) }
        var st = stat()
        if fstat(fd, &st) == 0, Int64(st.st_mtim.tv_sec) + 2 < savedAt {
            throw BackupJobError("\(path) was last written at \(st.st_mtim.tv_sec), before the save that just finished (\(savedAt)): "
                + "REDIS_DATA_DIR is not the data directory of this Redis server")
        }
        var validator = RDBValidator()
        do {
            try FileSystem.readChunks(fd: fd, path: path) { chunk in
                do {
                    try validator.update(chunk)
                } catch let failure as RDBValidator.Failure {
                    throw BackupJobError("\(path): \(failure)")
                }
                try consume(chunk)
            }
        } catch FileSystemError.errno(let code, "read", path) {
            throw BackupJobError("reading \(path) failed: \(String(cString: strerror(code)))")
        }
        do {
            return try validator.finish()
        } catch let failure as RDBValidator.Failure {
            throw BackupJobError("\(path): \(failure)")
        }
    }

    /// After the transfer, before the file gets its name: a master demoted meanwhile (a
    /// failover during the snapshot) may have lost writes the new master has, so this
    /// attempt is discarded and the retry asks Sentinel for the new master.
    private func confirmStillMaster(_ source: Endpoint) throws {
        let connection = try RedisConnection(to: source, username: settings.redis.username,
                                             password: settings.redis.password, timeout: settings.timeout)
        let role = try connection.info("replication")["role"] ?? "unknown"
        guard role == "master" else {
            throw BackupJobError("\(source) stopped being the master during the snapshot (role now \(role)): a failover "
                + "happened; the snapshot was discarded")
        }
        guard settings.redis.usesSentinel else { return }
        let named = try resolveMaster()
        guard named == source else {
            throw BackupJobError("the Sentinels now name \(named) as master, not \(source): a failover happened during "
                + "the snapshot; the snapshot was discarded")
        }
    }

    // MARK: Which server

    /// The master: the one most Sentinels name (asked afresh on every attempt), else
    /// `REDIS_HOST:PORT`.
    private func resolveMaster() throws -> Endpoint {
        let redis = settings.redis
        guard redis.usesSentinel else { return redis.master }
        let sentinels = redis.sentinels
        let reports = Mutex<[SentinelView.Report?]>(Array(repeating: nil, count: sentinels.count))
        let timeout = min(settings.timeout, 5)
        DispatchQueue.concurrentPerform(iterations: sentinels.count) { index in
            let report = SentinelView.ask(sentinel: sentinels[index], masterName: redis.sentinelMasterName,
                                          password: redis.sentinelPassword, timeout: timeout)
            reports.withLock { $0[index] = report }
        }
        let view = SentinelView(masterName: redis.sentinelMasterName, reports: reports.withLock { $0.compactMap { $0 } })
        return try view.requireMaster()
    }

    /// A replica of `master` that Sentinel (or `BACKUP_REDIS_REPLICA`) names and that is in
    /// sync (`master-link-status ok`, not flagged down); the most advanced one first.
    private func chooseReplica(of master: Endpoint) throws -> Endpoint {
        let redis = settings.redis
        guard redis.usesSentinel else {
            guard let replica = settings.replica else {
                throw BackupJobError("BACKUP_REDIS_SOURCE=replica needs REDIS_SENTINELS or BACKUP_REDIS_REPLICA")
            }
            return replica
        }
        var problems: [String] = []
        for sentinel in redis.sentinels {
            do {
                let connection = try RedisConnection(to: sentinel, password: redis.sentinelPassword, timeout: min(settings.timeout, 5))
                let replicas = try connection.sentinelReplicas(redis.sentinelMasterName)
                let usable = replicas.filter { fields in
                    let flags = (fields["flags"] ?? "").split(separator: ",")
                    return fields["master-link-status"] == "ok" && !flags.contains("s_down") && !flags.contains("o_down")
                        && !flags.contains("disconnected") && fields["ip"] != nil && fields["port"].flatMap { Int($0) } != nil
                }
                let best = usable.max { (Int64($0["slave-repl-offset"] ?? "") ?? 0) < (Int64($1["slave-repl-offset"] ?? "") ?? 0) }
                if let best, let ip = best["ip"], let port = best["port"].flatMap({ Int($0) }) {
                    return Endpoint(host: ip, port: port)
                }
                problems.append("\(sentinel): \(replicas.count) replica\(replicas.count == 1 ? "" : "s") known, none in sync")
            } catch {
                problems.append("\(error)")
            }
        }
        throw BackupJobError("no replica of \(redis.sentinelMasterName) (master \(master)) is in sync (\(problems.joined(separator: "; "))); "
            + "set BACKUP_REDIS_SOURCE=master to back up the master instead")
    }

    // MARK: Helpers

    private func makeMeta(_ snapshot: Snapshot, file: String, started: Double, finished: Double) -> BackupMeta {
        let written = snapshot.written
        var meta = BackupMeta(kind: .redis, target: settings.target, file: file, startedAt: started, finishedAt: finished,
                              sizeBytes: written.sizeBytes, sha256: written.sha256,
                              compression: "gzip-\(settings.compressionLevel)", serverVersion: snapshot.redisVersion)
        meta.uncompressedBytes = written.uncompressedBytes
        meta.markEncryption(of: written)
        meta.redisVersion = snapshot.redisVersion
        meta.rdbVersion = snapshot.rdbVersion
        meta.master = snapshot.master.description
        meta.source = snapshot.source.description
        meta.sourceRole = snapshot.sourceRole
        var keys: [String: Int] = [:]
        var expires: [String: Int] = [:]
        for (db, counts) in snapshot.keyspace {
            keys["db\(db)"] = counts.keys
            expires["db\(db)"] = counts.expires
        }
        meta.keys = keys
        meta.expires = expires
        meta.method = settings.method.rawValue
        meta.rdbChecksum = snapshot.checksum
        return meta
    }

    /// Sleeps `seconds` in short slices; false when cancelled meanwhile.
    private func sleepUnlessCancelled(_ seconds: Double) -> Bool {
        let end = MonotonicClock.seconds() + seconds
        while MonotonicClock.seconds() < end {
            if cancellation?.isCancelled == true { return false }
            usleep(useconds_t(min(0.1, max(0, end - MonotonicClock.seconds())) * 1_000_000))
        }
        return cancellation?.isCancelled != true
    }
}

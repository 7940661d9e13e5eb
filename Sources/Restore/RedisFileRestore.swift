#if canImport(Glibc)
import Glibc
#endif
import BackstopCore
import BackupCatalog
import BackupJobs
import Foundation
import RedisClient

/// Method `file` of `backstop restore redis`, the old scripts' way, for setups that share
/// Redis's data directory with Backstop and can restart Redis by a command:
///
/// 1. safety snapshot (the Redis backup job), then the backup job's lock is held so no
///    scheduled snapshot runs meanwhile;
/// 2. `CONFIG SET save ""` and, when AOF is on, `CONFIG SET appendonly no` + `CONFIG REWRITE`
///    (a restart would otherwise load the old AOF, or save the old data over the file);
/// 3. the RDB is written into `REDIS_DATA_DIR/<dbfilename>` (temp file, fsync, rename);
/// 4. `REDIS_RESTART_COMMAND` (run by /bin/sh) restarts Redis, which loads the file;
/// 5. once it answers and finished loading: `save` and AOF are set back (`CONFIG SET
///    appendonly yes` rewrites the AOF from the loaded data) and `CONFIG REWRITE`.
///
/// Sentinel is paused as for method replication. Blocking.
public struct RedisFileRestore: Sendable {
    public let base: RedisRestore
    /// Redis's data directory as this process sees it.
    public let dataDirectory: String
    /// The shell command that restarts Redis (e.g. `docker restart redis-master`).
    public let restartCommand: String

    public init(base: RedisRestore, dataDirectory: String, restartCommand: String) {
        self.base = base
        self.dataDirectory = dataDirectory
        self.restartCommand = restartCommand
    }

    public func plan(facts: RedisTargetFacts) -> [String] {
        var steps = [String]()
        if base.safetySnapshot != nil { steps.append("safety snapshot of the current data (backstop backup redis: a normal, listed backup)") }
        steps.append("checked \(base.source.entry.path): gzip stream whole, SHA-256 \(base.source.verification.sha256)")
        if base.redis.usesSentinel { steps.append("raise down-after-milliseconds of \(base.redis.sentinelMasterName) on each Sentinel for the restart") }
        steps += [
            "CONFIG SET save \"\" on \(base.target); if AOF is on: CONFIG SET appendonly no and CONFIG REWRITE (the restart must load the RDB)",
            "write the RDB into \(dataDirectory)/<dbfilename> (temporary file, fsync, rename)",
            "restart Redis: /bin/sh -c \(restartCommand)",
            "wait until \(base.target) answers and has loaded the file",
            "set save back; if AOF was on: CONFIG SET appendonly yes (rewrites the AOF from the loaded data); CONFIG REWRITE",
            "compare the key counts per database with the .meta",
        ]
        return steps
    }

    public func run() throws -> RedisRestoreResult {
        let started = MonotonicClock.seconds()
        let before = try base.inspect()
        let safetyPath = try base.takeSafetySnapshot()
        try base.checkNotCancelled(before: "the settings were changed")
        // No scheduled snapshot may save over the file or read a half-restarted server.
        let lock = try FileLock(path: base.backupDir + "/.locks/redis.lock", purpose: "restore redis (method file)")
        defer { lock.release() }
        let connection = try RedisConnection(to: base.target, username: base.redis.username, password: base.redis.password, timeout: 10)
        let config = try connection.configGet("*")
        let save = config["save"] ?? ""
        let aof = config["appendonly"] ?? "no"
        let dbfilename = config["dbfilename"] ?? "dump.rdb"
        guard FileSystem.isDirectory(dataDirectory) else {
            throw RestoreError("REDIS_DATA_DIR \(dataDirectory) is not a folder this process can see; nothing was changed", nothingChanged: true)
        }
        let guardSentinels = try SentinelGuard(redis: base.redis, say: base.say, holdMilliseconds: Int((base.options.timeout + 120) * 1000))
        defer { guardSentinels.release() }
        _ = try connection.call(["CONFIG", "SET", "save", ""])
        if aof == "yes" {
            _ = try connection.call(["CONFIG", "SET", "appendonly", "no"])
            do {
                _ = try connection.call(["CONFIG", "REWRITE"])
            } catch {
                _ = try? connection.call(["CONFIG", "SET", "appendonly", "yes"])
                _ = try? connection.call(["CONFIG", "SET", "save", save])
                throw RestoreError("AOF is on and CONFIG REWRITE failed (\(error)): a restart would load the old AOF. Nothing was changed; turn AOF off in redis.conf for the restore or use --method replication", nothingChanged: true)
            }
        }
        let destination = dataDirectory + "/" + dbfilename
        let temporary = dataDirectory + "/.backstop-restore-\(getpid()).rdb"
        do {
            unlink(temporary)
            let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw FileSystemError.errno(errno, "open", temporary) }
            defer { close(fd) }
            try Self.takeOwnership(fd: fd, like: destination, orFolder: dataDirectory, path: temporary)
            let cancellation = base.cancellation
            try GunzipStream().paced(path: base.source.entry.path, expectedBytes: base.source.verification.uncompressedBytes,
                                     maxRate: base.options.maxRate) { slice, _ in
                if cancellation?.isCancelled == true { throw Stopped() }
                try FileSystem.writeAll(fd: fd, slice, path: temporary)
            }
            guard fsync(fd) == 0 else { throw FileSystemError.errno(errno, "fsync", temporary) }
            // The point of no return: once the file is in place, the restore goes on to the end.
            if base.isCancelled { throw Stopped() }
            guard rename(temporary, destination) == 0 else { throw FileSystemError.errno(errno, "rename", destination) }
            FileSystem.syncDirectory(dataDirectory)
        } catch {
            unlink(temporary)
            _ = try? connection.call(["CONFIG", "SET", "save", save])
            if aof == "yes" {
                _ = try? connection.call(["CONFIG", "SET", "appendonly", "yes"])
                _ = try? connection.call(["CONFIG", "REWRITE"])
            }
            if error is Stopped {
                base.say("stopped while writing the snapshot: \(temporary) removed, save\(aof == "yes" ? " and AOF" : "") set back; Redis not restarted")
                throw RestoreError("stopped before \(destination) was replaced: the temporary file \(temporary) was removed, save\(aof == "yes" ? " and appendonly" : "") set back, Redis not restarted, so its data and its data folder are as before. Nothing was recorded\(safetyPath.map { " (the safety snapshot \($0) is a normal backup and stays)" } ?? "")", nothingChanged: true)
            }
            throw RestoreError("writing \(destination) failed: \(error); Redis was not restarted and its settings were set back", nothingChanged: false)
        }
        base.say("wrote \(destination); restarting Redis: \(restartCommand)")
        // Past the point of no return: a first SIGTERM/SIGINT lets the restart finish (cut in
        // half it could leave Redis stopped); the restore then goes on to its end.
        let shell = try ChildProcess(executable: "/bin/sh", arguments: ["-c", restartCommand], captureStdout: false,
                                     scratchDirectory: base.backupDir + "/.state", stoppedBySignal: false)
        let status = try shell.wait()
        guard status == 0 else {
            throw RestoreError("the restart command exited \(status): \(shell.stderrText()). \(destination) holds the snapshot; start Redis by hand, then CONFIG SET save '\(save)'\(aof == "yes" ? ", CONFIG SET appendonly yes, CONFIG REWRITE" : "")", nothingChanged: false)
        }
        let deadline = MonotonicClock.seconds() + base.options.timeout
        var after: RedisConnection?
        while MonotonicClock.seconds() < deadline {
            if let c = try? RedisConnection(to: base.target, username: base.redis.username, password: base.redis.password, timeout: 5),
               let info = try? c.info("persistence"), info["loading"] == "0" {
                after = c
                break
            }
            usleep(200_000)
        }
        guard let after else {
            throw RestoreError("\(base.target) did not come back within \(Int(base.options.timeout)) s after the restart; when it does: CONFIG SET save '\(save)'\(aof == "yes" ? ", CONFIG SET appendonly yes, CONFIG REWRITE" : "")", nothingChanged: false)
        }
        _ = try after.call(["CONFIG", "SET", "save", save])
        if aof == "yes" {
            _ = try after.call(["CONFIG", "SET", "appendonly", "yes"])
        }
        if aof == "yes" {
            if (try? after.call(["CONFIG", "REWRITE"])) == nil {
                base.say("warning: CONFIG REWRITE failed after the restore; check save/appendonly in redis.conf")
            }
        }
        guardSentinels.waitForMaster(timeout: 60)
        let server = try after.info("server")
        let keyspace = try after.keyspace()
        let expected = RedisRestore.expectedKeys(metaPath: BackupMeta.path(for: base.source.entry.path))
        var mismatches: [String] = []
        if let expected {
            for db in Set(expected.keys).union(keyspace.keys).sorted() where (expected[db] ?? 0) != (keyspace[db]?.keys ?? 0) {
                mismatches.append("db\(db): \(keyspace[db]?.keys ?? 0) keys, the .meta says \(expected[db] ?? 0)")
            }
        }
        do {
            try RestoreRecord.recordSuccess(kind: BackupKind.redis.rawValue, at: WallClock.now(), backupDir: base.backupDir)
        } catch {
            base.say("warning: the restore succeeded but recording it failed: \(error)")
        }
        return RedisRestoreResult(processIDBefore: before.processID, processIDAfter: server["process_id"] ?? "?", keyspace: keyspace,
                                  expected: expected, mismatches: mismatches, safetySnapshot: safetyPath,
                                  seconds: MonotonicClock.seconds() - started)
    }

    /// The restore was stopped (SIGTERM/SIGINT) while the snapshot was being written.
    struct Stopped: Error {}

    /// The snapshot is the whole dataset: it is created 0600 whatever the umask, then given
    /// the owner and mode of the file it replaces (or the data folder's owner with 0600 when
    /// there is none), so the Redis server that loads it can read it and nobody else can.
    static func takeOwnership(fd: Int32, like existing: String, orFolder folder: String, path: String) throws {
        var st = stat()
        if stat(existing, &st) == 0 {
            guard fchown(fd, st.st_uid, st.st_gid) == 0 || geteuid() != 0 else { throw FileSystemError.errno(errno, "fchown", path) }
            guard fchmod(fd, st.st_mode & 0o660) == 0 else { throw FileSystemError.errno(errno, "fchmod", path) }
        } else if stat(folder, &st) == 0, geteuid() == 0 {
            guard fchown(fd, st.st_uid, st.st_gid) == 0 else { throw FileSystemError.errno(errno, "fchown", path) }
        }
    }
}

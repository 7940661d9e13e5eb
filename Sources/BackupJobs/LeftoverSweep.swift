import BackstopCore
import Foundation

/// What a killed run (SIGKILL, OOM, power cut) leaves under BACKUP_DIR, removed when serve
/// starts, so no partial file sits beside the good backups until that job's next run:
///
/// - hidden `.NAME.partial` files and `.wal_STAMP.partial/` folders of the backup jobs, each
///   only while its job's lock can be taken (a `backstop backup` run by hand beside serve
///   keeps its file in progress); a process still writing into one is stopped first: the WAL
///   streamer pg_basebackup forks outlives a SIGKILLed serve (PR_SET_PDEATHSIG reaches only
///   pg_basebackup itself, and the streamer is orphaned, not killed, when its parent dies);
/// - `.NAME.tmp-PID-N` files of atomic writes and `.stderr-PID-N` files of child processes
///   whose PID is no longer running;
/// - the scratch folders (`$TMPDIR/backstop-drill-PID-XXXXXX`, with a copy of a Redis
///   snapshot) of restore drills whose PID is no longer running;
/// - the text of lock files left by a dead holder (the flock itself died with it; the text
///   would name a run that no longer exists).
///
/// Complete backups (no leading dot) and `.meta` files are never candidates, whatever their
/// state: only names these patterns produce are removed.
public enum LeftoverSweep {
    /// One thing removed or reset, for the log.
    public struct Action: Sendable, Equatable, CustomStringConvertible {
        public var path: String
        public var what: String
        public var description: String { "\(what): \(path)" }
    }

    /// Sweeps `backupDir`; returns what was done (empty when there was nothing to do).
    public static func run(backupDir: String) -> [Action] {
        var actions: [Action] = []
        let postgres = backupDir + "/postgres"
        let redis = backupDir + "/redis"
        let locks = backupDir + "/.locks"
        let jobs: [(lock: String, folder: String, owned: (String) -> Bool)] = [
            ("postgres_full", postgres, { $0.hasPrefix("globals_") || $0.contains("_full_") }),
            ("postgres_base", postgres, { $0.hasPrefix("wal_") }),
            ("redis", redis, { $0.hasPrefix("redis_") }),
        ]
        for job in jobs {
            guard FileSystem.isDirectory(job.folder) else { continue }
            // Holding the job's lock proves no run of it is writing these files now.
            guard let lock = try? FileLock(path: locks + "/\(job.lock).lock", purpose: "start-up sweep") else { continue }
            for name in (try? FileSystem.list(job.folder)) ?? []
            where name.hasPrefix(".") && name.hasSuffix(".partial") && job.owned(String(name.dropFirst())) {
                let path = job.folder + "/" + name
                for pid in stopWriters(of: path) {
                    actions.append(Action(path: path, what: "stopped process \(pid) of a killed run still writing into it"))
                }
                if (try? FileManager.default.removeItem(atPath: path)) != nil {
                    actions.append(Action(path: path, what: "removed the partial file of an interrupted run"))
                }
            }
            lock.release()
        }
        for folder in [backupDir, postgres, redis, backupDir + "/.state"] {
            for name in (try? FileSystem.list(folder)) ?? [] where name.hasPrefix(".") {
                guard let pid = ownerPID(name), !isRunning(pid) else { continue }
                let path = folder + "/" + name
                if unlink(path) == 0 {
                    actions.append(Action(path: path, what: "removed a temporary file of dead process \(pid)"))
                }
            }
        }
        let temporary = String(NSTemporaryDirectory().reversed().drop { $0 == "/" }.reversed())
        for name in (try? FileSystem.list(temporary)) ?? [] where name.hasPrefix("backstop-drill-") {
            let parts = name.dropFirst("backstop-drill-".count).split(separator: "-")
            guard parts.count == 2, let pid = pid_t(parts[0]), pid > 0, !isRunning(pid) else { continue }
            let path = temporary + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == getuid() else { continue }
            if (try? FileManager.default.removeItem(atPath: path)) != nil {
                actions.append(Action(path: path, what: "removed the scratch folder of a restore drill of dead process \(pid)"))
            }
        }
        for name in (try? FileSystem.list(locks)) ?? [] where name.hasSuffix(".lock") {
            actions += clearStaleLockText(locks + "/" + name)
        }
        return actions
    }

    /// The PID in `.X.tmp-PID-N` or `.stderr-PID-N`; nil for any other name.
    static func ownerPID(_ name: String) -> pid_t? {
        let marker: String
        if name.hasPrefix(".stderr-") {
            marker = ".stderr-"
        } else if let range = name.range(of: ".tmp-", options: .backwards) {
            marker = String(name[..<range.upperBound])
        } else {
            return nil
        }
        let rest = name.dropFirst(marker.count).split(separator: "-")
        guard rest.count == 2, let pid = pid_t(rest[0]), pid > 0, UInt32(rest[1]) != nil else { return nil }
        return pid
    }

    /// Processes of this user whose arguments name `path` (pg_basebackup's `--pgdata PATH`):
    /// SIGKILLed (a killed run's orphan; the job's lock, held by the caller, proves no live run
    /// owns it) and waited for, up to 5 s. Returns their pids.
    static func stopWriters(of path: String) -> [pid_t] {
        var stopped: [pid_t] = []
        for name in (try? FileSystem.list("/proc")) ?? [] {
            guard let pid = pid_t(name), pid != getpid(),
                  let cmdline = try? FileSystem.read("/proc/\(name)/cmdline"),
                  cmdline.split(separator: 0).contains(where: { String(decoding: $0, as: UTF8.self) == path }) else { continue }
            if kill(pid, SIGKILL) == 0 { stopped.append(pid) }
        }
        let deadline = MonotonicClock.seconds() + 5
        while stopped.contains(where: { FileSystem.exists("/proc/\($0)/cmdline") && !isZombie($0) }), MonotonicClock.seconds() < deadline {
            usleep(20_000)
        }
        return stopped
    }

    /// A process that ended and waits to be reaped (its parent's business, not ours).
    static func isZombie(_ pid: pid_t) -> Bool {
        guard let stat = try? FileSystem.read("/proc/\(pid)/stat"), let close = stat.lastIndex(of: UInt8(ascii: ")")),
              close + 2 < stat.count else { return true }
        return stat[close + 2] == UInt8(ascii: "Z") || stat[close + 2] == UInt8(ascii: "X")
    }

    /// True when a process with this PID exists (EPERM: exists, owned by someone else).
    static func isRunning(_ pid: pid_t) -> Bool {
        if pid == getpid() { return true }
        return kill(pid, 0) == 0 || errno == EPERM
    }

    /// A lock file whose text names a dead pid and whose flock is free: the text is cleared.
    private static func clearStaleLockText(_ path: String) -> [Action] {
        guard let text = try? FileSystem.read(path), !text.isEmpty else { return [] }
        let words = String(decoding: text, as: UTF8.self).split(separator: " ")
        guard words.count > 1, words[0] == "pid", let pid = pid_t(words[1]), !isRunning(pid) else { return [] }
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return [] }
        defer { flock(fd, LOCK_UN) }
        guard ftruncate(fd, 0) == 0 else { return [] }
        return [Action(path: path, what: "cleared the lock left by dead process \(pid)")]
    }
}

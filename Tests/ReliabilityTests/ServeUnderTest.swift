import BackstopTestSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The built `backstop serve` on a free loopback port, with what these tests read of it from
/// /proc (resident memory, open descriptors, children). Killed at the end of a test.
final class ServeUnderTest {
    let port: Int
    let backupDir: String
    let log: String
    let pid: Int32
    private var reaped = false

    /// `environment` is added over a serve with no scheduled job and PostgreSQL unreachable.
    /// `umask000` starts it under umask 000 (through `sh -c 'umask 000 && exec …'`: the same pid).
    init(environment: [String: String], backupDir: String? = nil, umask000: Bool = false) throws {
        let dir = try TestEnvironment.makeTempDirectory("reliability")
        self.backupDir = backupDir ?? dir + "/backups"
        log = dir + "/serve.log"
        port = try TestEnvironment.freePort()
        var env: [String: String] = [
            "BACKUP_DIR": self.backupDir,
            "METRICS_LISTEN": "127.0.0.1:\(port)",
            "HEALTH_CHECK_INTERVAL": "1s", "HEALTH_PROBE_TIMEOUT": "1s",
            "PGHOST": "127.0.0.1", "PGPORT": "1",
            "BACKUP_SCHEDULE_FULL": "", "BACKUP_SCHEDULE_INCREMENTAL": "", "BACKUP_SCHEDULE_REDIS": "",
            "BACKUP_SCHEDULE_CLEANUP": "", "BACKUP_SCHEDULE_DRILL": "",
        ]
        env.merge(environment) { _, new in new }
        if umask000 {
            pid = try TestProcesses.spawn("/bin/sh", ["-c", "umask 000 && exec \"$0\" serve", try BackstopBinary.path()],
                                          logFile: log, environment: env)
        } else {
            pid = try BackstopBinary.spawn(["serve"], environment: env, logFile: log)
        }
        let pid = self.pid, port = self.port, log = self.log
        try TestEnvironment.waitUntil(timeout: 30, "backstop serve to listen on \(port) (log \(log))") {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                throw TestSupportError("serve exited at start-up; log:\n\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            }
            return TestEnvironment.isListening(port: port)
        }
    }

    /// True while the process runs (not exited, not a zombie).
    var isRunning: Bool {
        if reaped { return false }
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == 0
    }

    /// Resident memory in KiB (VmRSS).
    var residentKiB: Int {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
        }
        return 0
    }

    /// Threads of the process (the `Threads:` line of /proc/PID/status).
    var threads: Int {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") where line.hasPrefix("Threads:") {
            return Int(line.split(separator: "\t").last ?? "") ?? 0
        }
        return 0
    }

    /// Open file descriptors.
    var openDescriptors: Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).count
    }

    func logText() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    func kill(_ signal: Int32) {
        Glibc.kill(pid, signal)
    }

    /// Waits for the exit (reaps it).
    func waitForExit(timeout: Double = 30) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                reaped = true
                TestProcesses.unregister(pid: pid)
                return
            }
            usleep(50_000)
        }
        throw TestSupportError("serve \(pid) did not exit within \(timeout) s")
    }

    func stop() {
        guard !reaped else { return }
        Glibc.kill(pid, SIGTERM)
        if (try? waitForExit(timeout: 20)) == nil {
            Glibc.kill(pid, SIGKILL)
            try? waitForExit(timeout: 5)
        }
    }

    deinit { stop() }
}

/// Every process whose parent is `pid`, with its command line as the kernel shows it.
func childProcesses(of pid: Int32) -> [(pid: Int32, cmdline: [String])] {
    ProcessTable.children(of: pid).map { ($0.pid, ProcessTable.commandLine(of: $0.pid)) }
}

/// True when a process with this pid exists and is not a zombie.
func processAlive(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return false }
    let state = stat[stat.index(after: close)...].split(separator: " ").first
    return state != "Z" && state != "X"
}

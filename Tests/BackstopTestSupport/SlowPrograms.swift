import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A folder for `BACKUP_POSTGRES_BIN` holding the real PostgreSQL client programs, some of them
/// made slow, so a test can stop a job at a moment of its choosing rather than race a fast one:
/// the real program still does the real work (a real dump of a real server), only at a rate
/// the test sets.
///
/// A throttled program is a small Python wrapper that starts the real one as its child (with
/// PR_SET_PDEATHSIG, so the real one dies with the wrapper as the wrapper dies with Backstop)
/// and copies its stdout — or, for a restore's psql, its own stdin into the real one's — at
/// `bytesPerSecond`. SIGTERM to the wrapper stops the real program and exits 143, as the real
/// program would. Every other program is a symbolic link to the real one.
public struct SlowPrograms: Sendable {
    public enum Slowdown: Sendable {
        /// The program's stdout reaches Backstop at this rate (pg_dump, pg_dumpall).
        case output(bytesPerSecond: Int)
        /// Backstop's writes reach the program's stdin at this rate (the restore's psql).
        case input(bytesPerSecond: Int)
        /// The real program with these arguments added (pg_basebackup `--max-rate=32k`).
        case arguments([String])
    }

    /// The folder to pass as `BACKUP_POSTGRES_BIN`.
    public let directory: String

    /// Links every program of `realDirectory` (the test server's bin folder) and wraps those
    /// in `slow`.
    public init(realDirectory: String, slow: [String: Slowdown]) throws {
        directory = try TestEnvironment.makeTempDirectory("slow-bin")
        chmod(directory, 0o755)
        for name in try FileManager.default.contentsOfDirectory(atPath: realDirectory) {
            let real = realDirectory + "/" + name
            let path = directory + "/" + name
            guard let slowdown = slow[name] else {
                try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: real)
                continue
            }
            let script: String
            switch slowdown {
            case .output(let rate): script = Self.throttle(real: real, mode: "stdout", rate: rate)
            case .input(let rate): script = Self.throttle(real: real, mode: "stdin", rate: rate)
            case .arguments(let extra):
                script = "#!/bin/sh\nexec '\(real)' \"$@\" \(extra.map { "'\($0)'" }.joined(separator: " "))\n"
            }
            try script.write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, 0o755)
        }
        for name in slow.keys where !FileManager.default.fileExists(atPath: directory + "/" + name) {
            throw TestSupportError("SlowPrograms: no \(name) in \(realDirectory)")
        }
    }

    /// The pids of the real programs below `pid` (the wrapper's child), for /proc checks.
    public static func descendants(of pid: Int32) -> [Int32] {
        var out: [Int32] = []
        var frontier = [pid]
        while let parent = frontier.popLast() {
            let children = ProcessTable.children(of: parent).map(\.pid)
            out += children
            frontier += children
        }
        return out
    }

    private static func throttle(real: String, mode: String, rate: Int) -> String {
        """
        #!/usr/bin/python3
        # Test wrapper (Tests/BackstopTestSupport/SlowPrograms.swift): the real program, throttled.
        import ctypes, os, signal, subprocess, sys, time
        REAL, MODE, RATE = \(pythonString(real)), \(pythonString(mode)), \(max(1, rate))
        libc = ctypes.CDLL(None)
        def child_setup():
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: the real program dies with this wrapper
        args = [REAL] + sys.argv[1:]
        if MODE == "stdout":
            p = subprocess.Popen(args, stdout=subprocess.PIPE, preexec_fn=child_setup)
            src, dst = p.stdout, sys.stdout.buffer
        else:
            p = subprocess.Popen(args, stdin=subprocess.PIPE, preexec_fn=child_setup)
            src, dst = sys.stdin.buffer, p.stdin
        def stop(signum, frame):
            p.terminate()
            try:
                p.wait(5)
            except Exception:
                p.kill()
            os._exit(128 + signum)
        signal.signal(signal.SIGTERM, stop)
        chunk = max(1, RATE // 10)
        try:
            while True:
                data = src.read1(chunk)
                if not data:
                    break
                dst.write(data)
                dst.flush()
                time.sleep(len(data) / RATE)
        except BrokenPipeError:
            p.kill()
        if MODE != "stdout":
            try:
                p.stdin.close()
            except BrokenPipeError:
                pass
        rc = p.wait()
        sys.exit(rc if rc >= 0 else 128 - rc)

        """
    }

    private static func pythonString(_ s: String) -> String {
        "'" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }
}

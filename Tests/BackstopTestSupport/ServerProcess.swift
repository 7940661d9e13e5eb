import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A long-running server a test support type started (`TestProcesses.spawn`) and its log:
/// `stop()` sends SIGTERM once, however often and from whichever thread it is called.
public final class ServerProcess: Sendable {
    public let pid: Int32
    public let logFile: String
    private let stopped = Mutex(false)

    public init(pid: Int32, logFile: String) {
        self.pid = pid
        self.logFile = logFile
    }

    public func stop() {
        let first = stopped.withLock { stopped -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        kill(pid, SIGTERM)
        TestProcesses.unregister(pid: pid)
    }

    /// Waits (suspending, not sleeping a thread) until the server listens on `port`; when it
    /// does not within `timeout` seconds it is stopped and the error carries its log.
    public func waitUntilListening(port: Int, timeout: Double, name: String) async throws {
        do {
            try await AsyncWait.until(timeout: timeout, "\(name) on 127.0.0.1:\(port)") {
                TestEnvironment.isListening(port: port)
            }
        } catch {
            let log = self.log
            stop()
            throw TestSupportError("\(error); \(name) log:\n\(log)")
        }
    }

    /// What the server wrote so far.
    public var log: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }
}

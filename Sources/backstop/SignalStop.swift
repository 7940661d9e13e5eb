import ArgumentParser
import BackupJobs
import Foundation
import Synchronization
import UnixSignals

/// SIGTERM and SIGINT for the one-shot subcommands (`backup`, `cleanup`, `restore`, `drill`):
/// the work is stopped the way `serve` stops a job whose grace period ran out, so an operator's
/// Ctrl-C or a container's `docker stop` leaves nothing half-done — no partial file, no scratch
/// database, no held lock, no child — and the exit status says which signal it was (143, 130).
///
/// On the first signal the work's task is cancelled (a backup's `JobCancellation` stops its
/// child and records the run as interrupted) and every child still running gets SIGTERM
/// (`ChildProcess.stopAll`: the restore's psql, the drill's servers), so each step fails the
/// ordinary way and cleans up as it always does. A second signal exits at once; the children
/// die with the process (PR_SET_PDEATHSIG) and the next `serve` sweeps what they left.
enum SignalStop {
    static func run(_ body: @escaping @Sendable () async throws -> Void) async throws {
        // Trapping sets the signals' disposition to SIG_IGN before any child starts; children
        // get the default back between fork and exec (CChildSpawn), so they stay stoppable.
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let work = Task { try await body() }
        let received = Mutex<UnixSignal?>(nil)
        let listener = Task {
            for await signal in signals {
                let first = received.withLock { seen -> Bool in
                    defer { if seen == nil { seen = signal } }
                    return seen == nil
                }
                guard first else {
                    FileHandle.standardError.write(Data("backstop: \(signal) again: exiting now\n".utf8))
                    exit(exitStatus(signal))
                }
                FileHandle.standardError.write(Data("backstop: \(signal) received: stopping and cleaning up (send it again to exit at once)\n".utf8))
                work.cancel()
                ChildProcess.stopAll()
            }
        }
        let result = await work.result
        listener.cancel()
        guard let signal = received.withLock({ $0 }) else { return try result.get() }
        if case .success = result {
            // The signal came too late to stop anything: the work is done, and says so.
            FileHandle.standardError.write(Data("backstop: \(signal) received, but the work had already finished\n".utf8))
            return
        }
        if case .failure(let error) = result, !(error is ExitCode), !(error is CancellationError) {
            // What the stopped step said (e.g. which scratch database was dropped).
            FileHandle.standardError.write(Data("backstop: \(error)\n".utf8))
        }
        FileHandle.standardError.write(Data("backstop: stopped by \(signal)\n".utf8))
        throw ExitCode(exitStatus(signal))
    }

    /// 128 + the signal number, as a shell reports a process the signal ended.
    static func exitStatus(_ signal: UnixSignal) -> Int32 { 128 + signal.rawValue }
}

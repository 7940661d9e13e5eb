import BackstopCore
#if canImport(Glibc)
import Glibc
#endif

extension RedisConnection {
    /// Runs `BGSAVE` and waits until that save has finished, judged by `INFO persistence`
    /// (`rdb_bgsave_in_progress`, `rdb_saves` or `rdb_last_save_time` moving on, and
    /// `rdb_last_bgsave_status`) rather than by LASTSAVE's one-second clock alone.
    ///
    /// A save already running (another BGSAVE, or a replication fork) predates the request,
    /// so it is waited out and a new one started. Throws `.server` when the save fails
    /// (`rdb_last_bgsave_status:err`: the server log says why — disk full, permissions) and
    /// `.io` when `timeout` seconds pass. `shouldContinue` is asked at every poll; when it
    /// answers false the wait ends with `CancellationError` (the server's save goes on).
    public func bgsave(timeout: Double, pollInterval: Double = 0.1, shouldContinue: () -> Bool = { true }) throws -> BackgroundSave {
        let deadline = MonotonicClock.seconds() + timeout
        func persistence() throws -> [String: String] {
            guard shouldContinue() else { throw CancellationError() }
            return try info("persistence")
        }
        func waitIdle() throws -> [String: String] {
            while true {
                let fields = try persistence()
                if fields["rdb_bgsave_in_progress"] == "0" { return fields }
                guard MonotonicClock.seconds() < deadline else {
                    throw RedisError(.io, endpoint: endpoint, operation: "BGSAVE",
                                     message: "the background save was still running after \(timeout) s")
                }
                usleep(useconds_t(pollInterval * 1_000_000))
            }
        }
        var before = try persistence()
        while true {
            let reply = try command(["BGSAVE"])
            if case .status = reply { break }
            let message = reply.errorMessage ?? "unexpected reply \(reply)"
            if message.contains("Another child process") {
                // An AOF rewrite runs: let the server start the save right after it.
                let scheduled = try command(["BGSAVE", "SCHEDULE"])
                if case .status = scheduled { break }
                throw RedisError(.server, endpoint: endpoint, operation: "BGSAVE SCHEDULE",
                                 message: scheduled.errorMessage ?? "unexpected reply \(scheduled)")
            }
            guard message.contains("already in progress") else {
                throw RedisError(.server, endpoint: endpoint, operation: "BGSAVE", message: message)
            }
            before = try waitIdle()
        }
        let savesBefore = before["rdb_saves"].flatMap { Int64($0) }
        let timeBefore = before["rdb_last_save_time"].flatMap { Int64($0) } ?? 0
        while true {
            let fields = try waitIdle()
            let saves = fields["rdb_saves"].flatMap { Int64($0) }
            let lastSave = fields["rdb_last_save_time"].flatMap { Int64($0) } ?? 0
            let finished: Bool
            if let savesBefore, let saves {
                finished = saves > savesBefore || fields["rdb_last_bgsave_status"] == "err"
            } else {
                finished = lastSave > timeBefore || fields["rdb_last_bgsave_status"] == "err"
            }
            if finished {
                guard fields["rdb_last_bgsave_status"] == "ok" else {
                    throw RedisError(.server, endpoint: endpoint, operation: "BGSAVE",
                                     message: "the background save failed (rdb_last_bgsave_status:err); the Redis log says why")
                }
                return BackgroundSave(lastSaveTime: lastSave,
                                      durationSeconds: fields["rdb_last_bgsave_time_sec"].flatMap { Int($0) } ?? 0,
                                      saves: saves)
            }
            // Idle but not yet counted: the fork ended between two polls; look again shortly.
            guard MonotonicClock.seconds() < deadline else {
                throw RedisError(.io, endpoint: endpoint, operation: "BGSAVE",
                                 message: "no completed background save seen within \(timeout) s")
            }
            usleep(useconds_t(pollInterval * 1_000_000))
        }
    }
}

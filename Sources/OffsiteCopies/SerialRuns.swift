/// Runs one body at a time; a request while one runs makes it run once more afterwards
/// (coalesced), so no finished job waits on another job's upload. Actor-isolated state.
actor SerialRuns {
    private var running = false
    private var again = false

    func run(_ body: @Sendable () async -> Void) async {
        if running {
            again = true
            return
        }
        running = true
        repeat {
            again = false
            await body()
        } while again
        running = false
    }
}

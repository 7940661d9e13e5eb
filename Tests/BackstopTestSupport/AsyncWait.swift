import Foundation

/// Polling for async tests. `TestEnvironment.waitUntil` sleeps its thread, which in an async
/// test is a thread of Swift's small cooperative pool: with two cores, two such waits stall
/// every other task of the run (the very tasks being waited for). This one suspends instead.
public enum AsyncWait {
    public static func until(timeout: Double, _ what: @autoclosure () -> String,
                             _ condition: () async throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? await condition()) == true { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestSupportError("timed out after \(timeout) s waiting for \(what())")
    }
}

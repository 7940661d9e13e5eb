import BackstopCore

/// The async face of `CurlEasy`: one request on a fresh handle, performed on the blocking
/// queue (`Blocking.run`), never on Swift's cooperative pool. Cancelling the calling task
/// aborts the transfer through curl's progress callback instead of waiting for a timeout.
public enum HTTP {
    public static func send(_ request: HTTPRequest) async throws -> HTTPClientResponse {
        let flag = CancellationFlag()
        return try await withTaskCancellationHandler {
            try await Blocking.run {
                try CurlEasy().perform(request, cancellation: flag)
            }
        } onCancel: {
            flag.cancel()
        }
    }
}

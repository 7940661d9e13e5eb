import BackstopCore
import Glibc

/// Standard output written straight to its descriptor, a piece at a time, for the large
/// outputs (`list` and `cleanup` of 100,000 backups): no `Data` copy of the whole text, and
/// the first failed write (a closed pipe, a full disk) is the error, the rest not attempted.
enum StandardOutput {
    static func write(_ produce: ((UnsafeBufferPointer<UInt8>) -> Void) -> Void) throws {
        var failure: (any Error)?
        produce { piece in
            guard failure == nil else { return }
            do { try FileSystem.writeAll(fd: STDOUT_FILENO, UnsafeRawBufferPointer(piece), path: "standard output") } catch { failure = error }
        }
        if let failure { throw failure }
    }
}

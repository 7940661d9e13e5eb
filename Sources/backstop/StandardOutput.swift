import ArgumentParser
import BackstopCore
import Foundation

/// Standard output written straight to its descriptor, a piece at a time, for the large
/// outputs (`list` and `cleanup` of 100,000 backups): no `Data` copy of the whole text, and
/// the first failed write (a closed pipe, a full disk) ends it, the rest not attempted.
enum StandardOutput {
    /// Writes what `produce` hands its sink. A failed write is said on stderr as "cannot print
    /// `what`: <error>" and ends the command with exit status 1.
    static func write(_ what: String, _ produce: ((UnsafeBufferPointer<UInt8>) -> Void) -> Void) throws {
        var failure: (any Error)?
        produce { piece in
            guard failure == nil else { return }
            do { try FileSystem.writeAll(fd: STDOUT_FILENO, UnsafeRawBufferPointer(piece), path: "standard output") } catch { failure = error }
        }
        guard let failure else { return }
        FileHandle.standardError.write(Data("backstop: cannot print \(what): \(failure)\n".utf8))
        throw ExitCode(1)
    }
}

#if canImport(Glibc)
import Glibc
#endif
import BackstopCore
import HTTPClient

/// Reading objects back: a streamed GET into a file (any size, bounded memory) and a small GET
/// into memory (`.meta` files). Both retry like every other call (`send`).
extension S3Client {
    /// Downloads `key` to `path`: the body is streamed into a hidden temporary file beside
    /// `path` (`.<name>.part`, mode 0600, fsynced by the HTTP client), its length checked
    /// against Content-Length, then renamed into place — so `path` is either the whole object
    /// or absent. A retry starts the transfer again from the beginning. Returns the byte count.
    /// `firstBytes` asks for only the start of the object (a Range request: a header to inspect).
    @discardableResult
    public func download(key: String, to path: String, firstBytes: UInt64? = nil) async throws -> UInt64 {
        let temp = FileSystem.directory(of: path) + "/." + FileSystem.lastComponent(of: path) + ".part"
        defer { unlink(temp) }  // gone after the rename; left only by a failure
        let response = try await send("GET", key: key) {
            HTTPRequest(method: "GET", url: settings.url(key: key),
                        headers: [Self.unsignedPayload] + (firstBytes.map { [HTTPHeader("Range", "bytes=0-\(max(1, $0) - 1)")] } ?? []),
                        totalTimeout: .seconds(24 * 3600), responseBodyFile: temp)
        }
        let address = "s3://\(settings.bucket)/\(key)"
        if let declared = response.header("Content-Length").flatMap({ UInt64($0) }), declared != response.bytesWrittenToFile {
            throw S3Error(operation: "GET", address: address,
                          message: "received \(response.bytesWrittenToFile) of \(declared) bytes (the transfer was cut short; try again)")
        }
        guard FileSystem.exists(temp) else {
            throw S3Error(operation: "GET", address: address, message: "no body was received")
        }
        guard rename(temp, path) == 0 else {
            throw S3Error(operation: "GET", address: address, message: "cannot rename \(temp) to \(path): \(String(cString: strerror(errno)))")
        }
        FileSystem.syncDirectory(FileSystem.directory(of: path))
        return response.bytesWrittenToFile
    }

    /// The bytes of a small object (at most `limit`, 1 MiB by default: a `.meta`). A larger
    /// object is an error, not a truncated answer.
    public func get(key: String, limit: Int = 1 << 20) async throws -> [UInt8] {
        let response = try await send("GET", key: key) {
            HTTPRequest(method: "GET", url: settings.url(key: key), headers: [Self.unsignedPayload], maxResponseBytes: limit)
        }
        if response.bodyTruncated {
            throw S3Error(operation: "GET", address: "s3://\(settings.bucket)/\(key)", message: "the object is larger than \(limit) bytes")
        }
        return response.body
    }
}

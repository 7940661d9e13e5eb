#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#else
import Darwin
#endif
import BackstopCore
import CCurl
import Synchronization

/// `curl_global_init` must run once, before any handle, and is not itself thread-safe:
/// a static `let` is initialised exactly once (swift_once) whichever thread gets there first.
enum CurlGlobal {
    static let status: UInt32 = backstop_curl_global_init_default().rawValue

    static var isReady: Bool { status == CURLE_OK.rawValue }
}

/// Set by `HTTP.send` when its task is cancelled; curl's progress callback reads it and
/// aborts the transfer, so a shutdown does not wait out a dead receiver's timeout.
public final class CancellationFlag: Sendable {
    private let flag = Atomic<Bool>(false)

    public init() {}

    public func cancel() { flag.store(true, ordering: .relaxed) }

    public var isCancelled: Bool { flag.load(ordering: .relaxed) }
}

/// One libcurl easy handle. Not Sendable on purpose: create it and call `perform` on one
/// thread (inside `Blocking.run` or a dedicated thread); `perform` blocks that thread until
/// the transfer ends. A handle may be reused for several requests in a row, which keeps the
/// connection open (S3 multipart parts to one host).
public final class CurlEasy {
    private let handle: UnsafeMutableRawPointer

    /// Creates the handle (initialising libcurl on first use).
    public init() throws {
        guard CurlGlobal.isReady else {
            throw HTTPError(kind: .setup, method: "-", url: "-",
                            message: "curl_global_init failed (CURLcode \(CurlGlobal.status)); libcurl cannot be used")
        }
        guard let handle = curl_easy_init() else {
            throw HTTPError(kind: .setup, method: "-", url: "-", message: "curl_easy_init failed (out of memory?)")
        }
        self.handle = handle
    }

    deinit {
        curl_easy_cleanup(handle)
    }

    /// Runs one request to completion (blocking). A non-2xx status is a response, not an
    /// error; errors are transport failures, timeouts, cancellation and bad options.
    public func perform(_ request: HTTPRequest, cancellation: CancellationFlag? = nil) throws -> HTTPClientResponse {
        curl_easy_reset(handle)
        let context = try TransferContext(request: request, cancellation: cancellation)
        // Retained for the duration of curl_easy_perform: the callbacks receive it as their
        // user-data pointer. Released only after perform has returned and curl calls no more.
        let unmanaged = Unmanaged.passRetained(context)
        defer { unmanaged.release() }
        let opaque = unmanaged.toOpaque()

        var list: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(list) }

        func fail(_ what: String, _ code: CURLcode) -> HTTPError {
            HTTPError(kind: .setup, method: request.method, url: request.url,
                      message: "setting \(what) was refused: \(String(cString: curl_easy_strerror(code)))")
        }
        func set(_ option: CURLoption, _ value: Int, _ what: String) throws {
            let code = backstop_curl_setopt_long(handle, option, value)
            guard code == CURLE_OK else { throw fail(what, code) }
        }
        func set(_ option: CURLoption, _ value: String, _ what: String) throws {
            // curl copies string options (all but POSTFIELDS, which is not used here).
            let code = value.withCString { backstop_curl_setopt_string(handle, option, $0) }
            guard code == CURLE_OK else { throw fail(what, code) }
        }
        func check(_ code: CURLcode, _ what: String) throws {
            guard code == CURLE_OK else { throw fail(what, code) }
        }

        try set(CURLOPT_URL, request.url, "the URL")
        try set(CURLOPT_NOSIGNAL, 1, "NOSIGNAL")
        try set(CURLOPT_PROTOCOLS_STR, "http,https", "the allowed protocols")
        try set(CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(request.connectTimeout), "the connect timeout")
        try set(CURLOPT_TIMEOUT_MS, Self.milliseconds(request.totalTimeout), "the total timeout")
        if let stall = request.stallTimeout {
            try set(CURLOPT_LOW_SPEED_LIMIT, 1, "the low-speed limit")
            try set(CURLOPT_LOW_SPEED_TIME, max(1, Int(stall.seconds.rounded(.up))), "the stall timeout")
        }
        try check(backstop_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, context.errorBuffer), "the error buffer")
        try check(backstop_curl_setopt_write_function(handle, curlWriteCallback), "the write callback")
        try check(backstop_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, opaque), "the write context")
        try check(backstop_curl_setopt_header_function(handle, curlHeaderCallback), "the header callback")
        try check(backstop_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, opaque), "the header context")
        try check(backstop_curl_setopt_read_function(handle, curlReadCallback), "the read callback")
        try check(backstop_curl_setopt_pointer(handle, CURLOPT_READDATA, opaque), "the read context")
        try check(backstop_curl_setopt_xferinfo_function(handle, curlProgressCallback), "the progress callback")
        try check(backstop_curl_setopt_pointer(handle, CURLOPT_XFERINFODATA, opaque), "the progress context")
        try set(CURLOPT_NOPROGRESS, 0, "progress reporting")

        let method = request.method.uppercased()
        let length = request.body.length
        switch method {
        case "GET":
            try set(CURLOPT_HTTPGET, 1, "GET")
        case "HEAD":
            try set(CURLOPT_NOBODY, 1, "HEAD")
        case "PUT":
            try set(CURLOPT_UPLOAD, 1, "PUT")
            try check(backstop_curl_setopt_off(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(length)), "the upload size")
        default:
            if method == "POST" || length > 0 {
                try set(CURLOPT_POST, 1, "POST")
                try check(backstop_curl_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(length)), "the body size")
            }
            if method != "POST" {
                try set(CURLOPT_CUSTOMREQUEST, method, "the method")
            }
        }

        var lines = request.headers.map { "\($0.name): \($0.value)" }
        // No `Expect: 100-continue` round trip: receivers that ignore it cost a second each.
        // With SigV4 the header-removing "Expect:" line cannot be used: libcurl (7.88) signs it
        // as an `expect` header it then never sends, and S3 refuses every request with
        // SignatureDoesNotMatch (found against moto with authentication on). There curl may
        // announce the body, but waits only 1 ms for the `100 Continue`.
        if request.awsSigV4 == nil {
            lines.append("Expect:")
        } else {
            try set(CURLOPT_EXPECT_100_TIMEOUT_MS, 1, "the 100-continue wait")
        }
        if let token = request.bearerToken {
            lines.append("Authorization: Bearer \(token.value)")
        }
        if let sig = request.awsSigV4 {
            try set(CURLOPT_AWS_SIGV4, sig.curlProvider, "AWS SigV4 signing")
            try set(CURLOPT_USERNAME, sig.accessKeyID, "the access key id")
            try set(CURLOPT_PASSWORD, sig.secretAccessKey.value, "the secret key")
            if let token = sig.sessionToken {
                lines.append("x-amz-security-token: \(token.value)")
            }
        }
        for line in lines {
            guard let appended = curl_slist_append(list, line) else {
                throw HTTPError(kind: .setup, method: request.method, url: request.url, message: "curl_slist_append failed (out of memory?)")
            }
            list = appended
        }
        try check(backstop_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, list), "the headers")

        let code = curl_easy_perform(handle)

        var status = 0
        _ = backstop_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        if code != CURLE_OK {
            // The write callback stopped a body that grew past the limit: the response is
            // still a response, cut short and marked so.
            if code == CURLE_WRITE_ERROR, context.truncated, status > 0 {
                return HTTPClientResponse(status: status, headers: context.headers, body: context.body, bodyTruncated: true)
            }
            throw context.error(for: code, request: request)
        }
        if let path = request.responseBodyFile, (200..<300).contains(status) {
            try context.finishDownload(path: path, request: request)
        }
        return HTTPClientResponse(status: status, headers: context.headers, body: context.body, bodyTruncated: false,
                            bytesWrittenToFile: context.downloaded)
    }

    static func milliseconds(_ d: Duration) -> Int {
        max(1, Int((d.seconds * 1000).rounded(.up)))
    }
}

/// Per-transfer state the callbacks reach through their user-data pointer. Lives on the
/// thread running `perform`; curl calls the callbacks on that same thread.
final class TransferContext {
    let maxResponseBytes: Int
    let cancellation: CancellationFlag?
    var body: [UInt8] = []
    var truncated = false
    var headers: [HTTPHeader] = []
    var headerBytes = 0
    var bytesToSend: [UInt8]
    var sendOffset = 0
    var fileDescriptor: Int32 = -1
    var fileOffset: UInt64 = 0
    var fileRemaining: UInt64 = 0
    var bodyError: String?
    let errorBuffer: UnsafeMutablePointer<CChar>
    /// The status of the response being received (from its status line).
    var currentStatus = 0
    let downloadPath: String?
    var downloadFD: Int32 = -1
    var downloaded: UInt64 = 0
    /// `request.stallTimeout` in seconds: checked in the progress callback, because libcurl's
    /// low-speed check averages over a window of several seconds (a 1 s limit fired after ~7 s).
    var stallLimit: Double?
    var progressBytes: Int64 = -1
    var progressAt = 0.0
    var stalled = false
    var downloadError: String?

    init(request: HTTPRequest, cancellation: CancellationFlag?) throws {
        maxResponseBytes = request.maxResponseBytes
        self.cancellation = cancellation
        stallLimit = request.stallTimeout?.seconds
        downloadPath = request.responseBodyFile
        switch request.body {
        case .empty:
            bytesToSend = []
        case let .bytes(bytes):
            bytesToSend = bytes
        case let .file(path, offset, length):
            bytesToSend = []
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                // Thrown before every property is set: no deinit runs, nothing to release.
                throw HTTPError(kind: .body, method: request.method, url: request.url,
                                message: "cannot open the body file \(path): \(String(cString: strerror(errno)))")
            }
            fileDescriptor = fd
            fileOffset = offset
            fileRemaining = length
        }
        let size = backstop_curl_error_size()
        errorBuffer = .allocate(capacity: size)
        errorBuffer.initialize(repeating: 0, count: size)
    }

    deinit {
        if fileDescriptor >= 0 { close(fileDescriptor) }
        if downloadFD >= 0 { close(downloadFD) }
        errorBuffer.deallocate()
    }

    func receive(_ data: UnsafeRawBufferPointer) -> Int {
        if let downloadPath, (200..<300).contains(currentStatus) {
            if downloadFD < 0 {
                downloadFD = open(downloadPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
                guard downloadFD >= 0 else {
                    downloadError = "cannot create \(downloadPath): \(String(cString: strerror(errno)))"
                    return 0
                }
            }
            do {
                try FileSystem.writeAll(fd: downloadFD, data, path: downloadPath)
            } catch {
                downloadError = "\(error)"
                return 0
            }
            downloaded += UInt64(data.count)
            return data.count
        }
        let room = maxResponseBytes - body.count
        if data.count > room {
            body.append(contentsOf: data.prefix(max(0, room)))
            truncated = true
            return 0 // stops the transfer (CURLE_WRITE_ERROR)
        }
        body.append(contentsOf: data)
        return data.count
    }

    /// fsyncs and closes the downloaded file; an empty 2xx body still leaves an empty file.
    func finishDownload(path: String, request: HTTPRequest) throws {
        if downloadFD < 0 {
            downloadFD = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard downloadFD >= 0 else {
                throw HTTPError(kind: .body, method: request.method, url: request.url, message: "cannot create \(path): \(String(cString: strerror(errno)))")
            }
        }
        let fd = downloadFD
        downloadFD = -1
        let synced = fsync(fd) == 0
        let reason = synced ? "" : String(cString: strerror(errno))
        close(fd)
        guard synced else {
            throw HTTPError(kind: .body, method: request.method, url: request.url, message: "fsync \(path) failed: \(reason)")
        }
    }

    func header(_ data: UnsafeRawBufferPointer) -> Int {
        headerBytes += data.count
        guard headerBytes <= 256 * 1024 else { return 0 }
        var end = data.count
        while end > 0, data[end - 1] == 10 || data[end - 1] == 13 { end -= 1 }
        let line = String(decoding: UnsafeRawBufferPointer(rebasing: data[0..<end]), as: UTF8.self)
        if line.hasPrefix("HTTP/") {
            // A new status line (after 100 Continue or a 1xx): keep only the final response's headers.
            headers = []
            let parts = line.split(separator: " ")
            currentStatus = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
        } else if let colon = line.firstIndex(of: ":") {
            headers.append(HTTPHeader(String(line[..<colon]).trimmingSpaces(), String(line[line.index(after: colon)...]).trimmingSpaces()))
        }
        return data.count
    }

    func send(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        if fileDescriptor >= 0 {
            let want = Int(min(UInt64(buffer.count), fileRemaining))
            guard want > 0 else { return 0 }
            while true {
                let n = pread(fileDescriptor, buffer.baseAddress, want, off_t(fileOffset))
                if n < 0, errno == EINTR { continue }
                if n <= 0 {
                    bodyError = n == 0 ? "the body file ended early" : String(cString: strerror(errno))
                    return backstop_curl_readfunc_abort()
                }
                fileOffset += UInt64(n)
                fileRemaining -= UInt64(n)
                return n
            }
        }
        let count = min(buffer.count, bytesToSend.count - sendOffset)
        guard count > 0 else { return 0 }
        bytesToSend.withUnsafeBytes { src in
            buffer.baseAddress!.copyMemory(from: src.baseAddress! + sendOffset, byteCount: count)
        }
        sendOffset += count
        return count
    }

    func error(for code: CURLcode, request: HTTPRequest) -> HTTPError {
        let detail = String(cString: errorBuffer)
        let reason = String(cString: curl_easy_strerror(code))
        var message = detail.isEmpty || detail == reason ? reason : "\(reason): \(detail)"
        message = scrub(message, request: request)
        let kind: HTTPError.Kind
        if code == CURLE_WRITE_ERROR, let downloadError {
            kind = .body
            message = "writing the response body failed: \(downloadError)"
        } else if code == CURLE_ABORTED_BY_CALLBACK, stalled, let stallLimit {
            kind = .timeout
            message = "no data moved for \(Int(stallLimit.rounded(.up))) s (the stall timeout)"
        } else if code == CURLE_ABORTED_BY_CALLBACK, cancellation?.isCancelled == true {
            kind = .cancelled
            message = "cancelled (shutting down)"
        } else if code == CURLE_ABORTED_BY_CALLBACK || code == CURLE_READ_ERROR, let bodyError {
            kind = .body
            message = "reading the request body failed: \(bodyError)"
        } else if code == CURLE_OPERATION_TIMEDOUT {
            kind = .timeout
        } else {
            kind = .transport(code: Int32(code.rawValue))
        }
        return HTTPError(kind: kind, method: request.method, url: request.url, message: message + " (curl error \(code.rawValue))")
    }

    /// curl's messages can quote the URL; the error must not carry what `URLRedaction` removes.
    private func scrub(_ text: String, request: HTTPRequest) -> String {
        var out = text
        if out.contains(request.url) { out = out.replacingAll(request.url, with: URLRedaction.redact(request.url)) }
        var secrets = [request.bearerToken?.value, request.awsSigV4?.secretAccessKey.value, request.awsSigV4?.sessionToken?.value]
        if let schemeEnd = request.url.firstRange(of: "://"), let at = request.url[schemeEnd.upperBound...].firstIndex(of: "@") {
            secrets.append(String(request.url[schemeEnd.upperBound..<at]))
        }
        for case let secret? in secrets where !secret.isEmpty {
            out = out.replacingAll(secret, with: URLRedaction.mask)
        }
        return out
    }
}

// The C callbacks: free functions that capture nothing; their state arrives as user data.

private func curlWriteCallback(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ user: UnsafeMutableRawPointer?) -> Int {
    guard let data, let user else { return 0 }
    let context = Unmanaged<TransferContext>.fromOpaque(user).takeUnretainedValue()
    return context.receive(UnsafeRawBufferPointer(start: data, count: size * count))
}

private func curlHeaderCallback(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ user: UnsafeMutableRawPointer?) -> Int {
    guard let data, let user else { return 0 }
    let context = Unmanaged<TransferContext>.fromOpaque(user).takeUnretainedValue()
    return context.header(UnsafeRawBufferPointer(start: data, count: size * count))
}

private func curlReadCallback(_ buffer: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ user: UnsafeMutableRawPointer?) -> Int {
    guard let buffer, let user else { return backstop_curl_readfunc_abort() }
    let context = Unmanaged<TransferContext>.fromOpaque(user).takeUnretainedValue()
    return context.send(into: UnsafeMutableRawBufferPointer(start: buffer, count: size * count))
}

private func curlProgressCallback(_ user: UnsafeMutableRawPointer?, _ dltotal: curl_off_t, _ dlnow: curl_off_t, _ ultotal: curl_off_t, _ ulnow: curl_off_t) -> Int32 {
    guard let user else { return 0 }
    let context = Unmanaged<TransferContext>.fromOpaque(user).takeUnretainedValue()
    if context.cancellation?.isCancelled == true { return 1 }
    guard let limit = context.stallLimit else { return 0 }
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    let seconds = Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    let moved = Int64(dlnow) + Int64(ulnow)
    if moved != context.progressBytes {
        context.progressBytes = moved
        context.progressAt = seconds
    } else if seconds - context.progressAt > limit {
        context.stalled = true
        return 1
    }
    return 0
}

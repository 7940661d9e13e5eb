import BackstopCore
import Crypto
import Foundation
import HTTPClient

/// An S3 error with the operation, the `s3://` address and S3's own code: never a credential
/// (the signature lives in a request header curl builds, and responses do not echo it).
public struct S3Error: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var address: String
    public var message: String
    public var description: String { "S3 \(operation) \(address) failed: \(message)" }
}

/// One object as ListObjectsV2 reports it.
public struct S3Object: Sendable, Equatable {
    public var key: String
    public var size: UInt64
    public var lastModified: String
    public var storageClass: String?
}

/// S3 over libcurl (`CURLOPT_AWS_SIGV4`): single PUTs, multipart uploads with a few parts in
/// flight, listing, deletes. Every request is retried with exponential backoff and full jitter
/// on network errors, timeouts, 5xx, 429, `SlowDown` and `RequestTimeout`.
public struct S3Client: Sendable {
    public let settings: S3Settings

    public init(settings: S3Settings) { self.settings = settings }

    /// What to do with a response (pure: tested without a server).
    public enum Verdict: Equatable, Sendable {
        case success
        case retry(String)
        case fail(String)
    }

    public static func classify(status: Int, body: String) -> Verdict {
        let code = xmlValue(body, "Code")
        if (200..<300).contains(status) {
            // CompleteMultipartUpload can answer 200 with an <Error> document.
            if body.contains("<Error>") {
                return ["InternalError", "SlowDown", "ServiceUnavailable"].contains(code ?? "") ? .retry(describe(status, body)) : .fail(describe(status, body))
            }
            return .success
        }
        if status >= 500 || status == 429 || ["SlowDown", "RequestTimeout", "InternalError", "RequestTimeTooSkewed"].contains(code ?? "") {
            return .retry(describe(status, body))
        }
        return .fail(describe(status, body))
    }

    static func describe(_ status: Int, _ body: String) -> String {
        let code = xmlValue(body, "Code").map { " \($0)" } ?? ""
        let message = xmlValue(body, "Message").map { ": \($0)" } ?? ""
        return "HTTP \(status)\(code)\(message)"
    }

    /// Delay before attempt `attempt + 1` (attempt counts from 1): full jitter over
    /// base × 2^(attempt−1), capped at 30 s.
    public static func backoff(attempt: Int, base: Duration, random: Double = Double.random(in: 0...1)) -> Duration {
        let ceiling = min(30.0, base.seconds * pow(2, Double(attempt - 1)))
        return .milliseconds(Int(max(0.01, ceiling * random) * 1000))
    }

    /// The longest `Retry-After` honoured: a server asking for more gets this much, so a
    /// misconfigured proxy cannot park an upload for hours.
    public static let retryAfterCap: Duration = .seconds(30)

    /// The delay a `Retry-After` answer header asks for (delta-seconds, or an HTTP date as
    /// RFC 9110 allows), capped at `retryAfterCap`; nil when absent or unreadable.
    public static func retryAfter(_ value: String?, now: Date = Date()) -> Duration? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        var seconds: Double
        if let delta = Int(value), delta >= 0 {
            seconds = Double(delta)
        } else {
            let format = DateFormatter()
            format.locale = Locale(identifier: "en_US_POSIX")
            format.timeZone = TimeZone(identifier: "GMT")
            format.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
            guard let date = format.date(from: value) else { return nil }
            seconds = max(0, date.timeIntervalSince(now))
        }
        seconds = min(seconds, retryAfterCap.seconds)
        return .milliseconds(Int(seconds * 1000))
    }

    /// Sends with retries. `build` makes the request afresh for each attempt. A retried answer
    /// with `Retry-After` waits at least that long (capped) before the next attempt.
    func send(_ operation: String, key: String?, maxAttempts: Int? = nil, _ build: () throws -> HTTPRequest) async throws -> HTTPClientResponse {
        let address = "s3://\(settings.bucket)/\(key ?? "")"
        let maxAttempts = maxAttempts ?? settings.maxAttempts
        var lastProblem = ""
        var asked: Duration?
        for attempt in 1...maxAttempts {
            if attempt > 1 {
                let backoff = Self.backoff(attempt: attempt - 1, base: settings.retryBase)
                try await Task.sleep(for: max(backoff, asked ?? .zero))
            }
            asked = nil
            var request = try build()
            request.awsSigV4 = try await settings.credentials.signer()
            request.connectTimeout = settings.connectTimeout
            request.stallTimeout = settings.stallTimeout
            let response: HTTPClientResponse
            do {
                response = try await HTTP.send(request)
            } catch let error as HTTPError where error.isRetryable {
                lastProblem = error.message
                continue
            } catch let error as HTTPError {
                throw S3Error(operation: operation, address: address, message: error.message)
            }
            switch Self.classify(status: response.status, body: response.bodyText) {
            case .success: return response
            case .retry(let problem):
                lastProblem = problem
                asked = Self.retryAfter(response.header("Retry-After"))
            case .fail(let problem): throw S3Error(operation: operation, address: address, message: problem + Self.hint(response.status))
            }
        }
        throw S3Error(operation: operation, address: address,
                      message: "\(lastProblem) (gave up after \(maxAttempts) attempts; check BACKUP_S3_ENDPOINT/region and the network, the next cycle retries)")
    }

    static func hint(_ status: Int) -> String {
        switch status {
        case 403: return " (check the credentials — AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the role or profile — and the bucket policy)"
        case 404: return " (check BACKUP_S3_BUCKET and BACKUP_S3_REGION)"
        default: return ""
        }
    }

    /// The user-metadata header every object Backstop uploads carries (its version), so a data
    /// object without `.meta` can be told apart: Backstop's interrupted upload, or the old
    /// scripts' `aws s3 cp` of a finished backup.
    public static let markerHeader = "x-amz-meta-backstop"

    var objectHeaders: [HTTPHeader] {
        var h = [HTTPHeader("x-amz-storage-class", settings.storageClass), HTTPHeader("Content-Type", "application/octet-stream"),
                 HTTPHeader(Self.markerHeader, BuildInfo.version)]
        switch settings.encryption {
        case .none: break
        case .aes256: h.append(HTTPHeader("x-amz-server-side-encryption", "AES256"))
        case .kms(let keyID):
            h.append(HTTPHeader("x-amz-server-side-encryption", "aws:kms"))
            if let keyID { h.append(HTTPHeader("x-amz-server-side-encryption-aws-kms-key-id", keyID)) }
        }
        return h
    }

    static let unsignedPayload = HTTPHeader("x-amz-content-sha256", "UNSIGNED-PAYLOAD")

    /// Uploads a file to `key`: one PUT up to the multipart threshold, multipart above it.
    public func upload(file path: String, key: String) async throws {
        var st = stat()
        guard stat(path, &st) == 0 else { throw FileSystemError.errno(errno, "stat", path) }
        let size = UInt64(st.st_size)
        if size <= settings.multipartThreshold {
            let md5 = try await Blocking.run { try Self.md5Base64(path: path, offset: 0, length: size) }
            _ = try await send("PUT", key: key) {
                HTTPRequest(method: "PUT", url: settings.url(key: key),
                            headers: objectHeaders + [HTTPHeader("Content-MD5", md5), Self.unsignedPayload],
                            body: .file(path: path, offset: 0, length: size), totalTimeout: .seconds(3600))
            }
        } else {
            try await multipartUpload(path: path, size: size, key: key)
        }
    }

    /// Create, parts (`concurrency` in flight, each with Content-MD5), complete; abort on failure.
    func multipartUpload(path: String, size: UInt64, key: String) async throws {
        let created = try await send("CreateMultipartUpload", key: key) {
            HTTPRequest(method: "POST", url: settings.url(key: key, query: "uploads="), headers: objectHeaders + [Self.unsignedPayload])
        }
        guard let uploadID = Self.xmlValue(created.bodyText, "UploadId") else {
            throw S3Error(operation: "CreateMultipartUpload", address: "s3://\(settings.bucket)/\(key)", message: "no UploadId in the answer")
        }
        let partSize = settings.partSize
        let count = Int((size + partSize - 1) / partSize)
        let uploadQuery = "uploadId=" + S3Settings.encode(uploadID)
        do {
            var etags = [String](repeating: "", count: count)
            try await withThrowingTaskGroup(of: (Int, String).self) { group in
                var next = 0
                func addPart() {
                    let index = next
                    next += 1
                    let offset = UInt64(index) * partSize
                    let length = min(partSize, size - offset)
                    group.addTask {
                        let md5 = try await Blocking.run { try Self.md5Base64(path: path, offset: offset, length: length) }
                        let response = try await send("UploadPart \(index + 1)/\(count)", key: key) {
                            HTTPRequest(method: "PUT", url: settings.url(key: key, query: "partNumber=\(index + 1)&" + uploadQuery),
                                        headers: [HTTPHeader("Content-MD5", md5), Self.unsignedPayload],
                                        body: .file(path: path, offset: offset, length: length), totalTimeout: .seconds(3600))
                        }
                        guard let etag = response.header("ETag") else {
                            throw S3Error(operation: "UploadPart", address: "s3://\(settings.bucket)/\(key)", message: "no ETag in the answer")
                        }
                        return (index, etag)
                    }
                }
                for _ in 0..<min(settings.concurrency, count) { addPart() }
                while let (index, etag) = try await group.next() {
                    etags[index] = etag
                    if next < count { addPart() }
                }
            }
            var xml = "<CompleteMultipartUpload>"
            for (i, etag) in etags.enumerated() {
                xml += "<Part><PartNumber>\(i + 1)</PartNumber><ETag>\(Self.xmlEscape(etag))</ETag></Part>"
            }
            xml += "</CompleteMultipartUpload>"
            let body = Array(xml.utf8)
            _ = try await send("CompleteMultipartUpload", key: key) {
                HTTPRequest(method: "POST", url: settings.url(key: key, query: uploadQuery),
                            headers: [HTTPHeader("Content-Type", "application/xml"), Self.unsignedPayload], body: .bytes(body),
                            totalTimeout: .seconds(600))
            }
        } catch {
            // An incomplete upload costs storage until aborted. Also (above all) when the
            // upload was cancelled by a shutdown: the abort runs in a task of its own, which the
            // cancellation does not reach, with two quick attempts so a stop is not held up.
            let settings = self.settings, client = self
            await Task.detached {
                _ = try? await client.send("AbortMultipartUpload", key: key, maxAttempts: 2) {
                    HTTPRequest(method: "DELETE", url: settings.url(key: key, query: uploadQuery), headers: [Self.unsignedPayload],
                                totalTimeout: .seconds(10))
                }
            }.value
            throw error
        }
    }

    /// Every object under `prefix` (relative to BACKUP_S3_PREFIX), ListObjectsV2 page by page.
    public func list(prefix relative: String = "") async throws -> [S3Object] {
        let fullPrefix = relative.isEmpty ? (settings.prefix.isEmpty ? "" : settings.prefix + "/") : settings.key(for: relative)
        var objects: [S3Object] = []
        var token: String?
        repeat {
            var query = "list-type=2&prefix=" + S3Settings.encode(fullPrefix)
            if let token { query = "continuation-token=" + S3Settings.encode(token) + "&" + query }
            let response = try await send("ListObjectsV2", key: nil) {
                HTTPRequest(method: "GET", url: settings.url(key: nil, query: query), headers: [Self.unsignedPayload],
                            maxResponseBytes: 64 << 20)
            }
            let text = response.bodyText
            for chunk in text.components(separatedBy: "<Contents>").dropFirst() {
                guard let key = Self.xmlValue(chunk, "Key") else { continue }
                objects.append(S3Object(key: Self.xmlUnescape(key), size: UInt64(Self.xmlValue(chunk, "Size") ?? "") ?? 0,
                                        lastModified: Self.xmlValue(chunk, "LastModified") ?? "", storageClass: Self.xmlValue(chunk, "StorageClass")))
            }
            token = Self.xmlValue(text, "IsTruncated") == "true" ? Self.xmlValue(text, "NextContinuationToken").map(Self.xmlUnescape) : nil
        } while token != nil
        return objects
    }

    /// The headers of an object (HEAD), nil when it does not exist.
    public func head(key: String) async throws -> HTTPClientResponse? {
        do {
            return try await send("HEAD", key: key) {
                HTTPRequest(method: "HEAD", url: settings.url(key: key), headers: [Self.unsignedPayload])
            }
        } catch let error as S3Error where error.message.hasPrefix("HTTP 404") {
            return nil
        }
    }

    /// Deletes one object (absent is fine).
    public func delete(key: String) async throws {
        _ = try await send("DELETE", key: key) {
            HTTPRequest(method: "DELETE", url: settings.url(key: key), headers: [Self.unsignedPayload])
        }
    }

    /// Base64 MD5 of a byte range, read 1 MiB at a time (bounded memory).
    static func md5Base64(path: String, offset: UInt64, length: UInt64) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError.errno(errno, "open", path) }
        defer { close(fd) }
        var hasher = Insecure.MD5()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var done: UInt64 = 0
        while done < length {
            let want = Int(min(UInt64(buffer.count), length - done))
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, off_t(offset + done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw FileSystemError.errno(n < 0 ? errno : EIO, "read", path) }
            hasher.update(data: buffer[0..<n])
            done += UInt64(n)
        }
        return Data(hasher.finalize()).base64EncodedString()
    }

    static func xmlValue(_ text: String, _ tag: String) -> String? {
        guard let start = text.range(of: "<\(tag)>"), let end = text.range(of: "</\(tag)>", range: start.upperBound..<text.endIndex) else { return nil }
        return String(text[start.upperBound..<end.lowerBound])
    }

    static func xmlEscape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    static func xmlUnescape(_ s: String) -> String {
        s.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&lt;", with: "<")
            .replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&apos;", with: "'").replacingOccurrences(of: "&amp;", with: "&")
    }
}

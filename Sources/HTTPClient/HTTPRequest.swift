import BackstopCore

/// One header line. Headers are an ordered list, not a dictionary: HTTP allows a name twice
/// and signed requests (S3) care about exact names and values.
public struct HTTPHeader: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }

    public var description: String { "\(name): \(value)" }
}

/// What a request sends. `.file` streams a byte range of a file through curl's read callback
/// (an S3 multipart part), so memory stays bounded whatever the size.
public enum HTTPRequestBody: Sendable {
    case empty
    case bytes([UInt8])
    case file(path: String, offset: UInt64, length: UInt64)

    /// Bytes the body will send (Content-Length).
    public var length: UInt64 {
        switch self {
        case .empty: return 0
        case let .bytes(bytes): return UInt64(bytes.count)
        case let .file(_, _, length): return length
        }
    }
}

/// AWS Signature V4, computed by libcurl itself (`CURLOPT_AWS_SIGV4`), for S3 and
/// S3-compatible stores. The secret key reaches curl only; it never appears in an error.
public struct AWSSigV4: Sendable {
    public var region: String
    public var service: String
    public var accessKeyID: String
    public var secretAccessKey: Secret
    /// Temporary credentials' token, sent as `x-amz-security-token` (signed by curl).
    public var sessionToken: Secret?

    public init(region: String, service: String = "s3", accessKeyID: String, secretAccessKey: Secret, sessionToken: Secret? = nil) {
        self.region = region
        self.service = service
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    /// The value of `CURLOPT_AWS_SIGV4`: `aws:amz:<region>:<service>`.
    var curlProvider: String { "aws:amz:\(region):\(service)" }
}

/// One HTTP request as the rest of Backstop describes it; `CurlEasy` turns it into options.
/// Everything is a value so a request can be retried or handed to another thread unchanged.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [HTTPHeader]
    public var body: HTTPRequestBody
    /// Sent as `Authorization: Bearer …`; kept as a `Secret` so it never prints.
    public var bearerToken: Secret?
    /// Signs the request for S3 when set.
    public var awsSigV4: AWSSigV4?
    /// Time allowed to establish the TCP (and TLS) connection.
    public var connectTimeout: Duration
    /// Time allowed for the whole exchange, connect included.
    public var totalTimeout: Duration
    /// When set, a transfer that moves less than 1 byte/s for this long is aborted (a stalled
    /// S3 upload), independently of `totalTimeout`.
    public var stallTimeout: Duration?
    /// Response bodies larger than this are cut here and the transfer stopped
    /// (`HTTPClientResponse.bodyTruncated`): a misbehaving server cannot fill the memory.
    public var maxResponseBytes: Int
    /// When set, a 2xx response body is streamed into this file (created or truncated, mode
    /// 0600, fsynced before `perform` returns) instead of memory: an S3 download of any size
    /// in bounded memory. Write to a temporary name and rename it once verified. Non-2xx
    /// bodies (error documents) still arrive in `HTTPClientResponse.body`.
    public var responseBodyFile: String?

    public init(
        method: String, url: String, headers: [HTTPHeader] = [], body: HTTPRequestBody = .empty,
        bearerToken: Secret? = nil, awsSigV4: AWSSigV4? = nil,
        connectTimeout: Duration = .seconds(5), totalTimeout: Duration = .seconds(30),
        stallTimeout: Duration? = nil, maxResponseBytes: Int = 1 << 20, responseBodyFile: String? = nil
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.bearerToken = bearerToken
        self.awsSigV4 = awsSigV4
        self.connectTimeout = connectTimeout
        self.totalTimeout = totalTimeout
        self.stallTimeout = stallTimeout
        self.maxResponseBytes = maxResponseBytes
        self.responseBodyFile = responseBodyFile
    }

    /// A JSON POST, the shape of every webhook and Alertmanager call.
    public static func postJSON(_ url: String, _ json: [UInt8], bearerToken: Secret? = nil,
                                connectTimeout: Duration = .seconds(5), totalTimeout: Duration = .seconds(10)) -> HTTPRequest {
        HTTPRequest(method: "POST", url: url, headers: [HTTPHeader("Content-Type", "application/json")],
                    body: .bytes(json), bearerToken: bearerToken,
                    connectTimeout: connectTimeout, totalTimeout: totalTimeout)
    }
}

/// What came back: status, headers of the final response, and the (bounded) body.
public struct HTTPClientResponse: Sendable {
    public var status: Int
    public var headers: [HTTPHeader]
    public var body: [UInt8]
    /// True when the body was longer than `maxResponseBytes` and was cut.
    public var bodyTruncated: Bool
    /// Bytes written to `HTTPRequest.responseBodyFile` (0 when not used).
    public var bytesWrittenToFile: UInt64

    public init(status: Int, headers: [HTTPHeader], body: [UInt8], bodyTruncated: Bool = false, bytesWrittenToFile: UInt64 = 0) {
        self.status = status
        self.headers = headers
        self.body = body
        self.bodyTruncated = bodyTruncated
        self.bytesWrittenToFile = bytesWrittenToFile
    }

    /// The first header of that name (case-insensitive).
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// 2xx.
    public var isSuccess: Bool { (200..<300).contains(status) }
}

import BackstopCore
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The built `backstop` executable, for end-to-end tests that run it as an operator would.
/// `swift build` puts it beside the test bundle; `BACKSTOP_BINARY` overrides the path.
public enum BackstopBinary {
    public static func path() throws -> String {
        if let override = ProcessInfo.processInfo.environment["BACKSTOP_BINARY"], !override.isEmpty { return override }
        var candidates: [String] = []
        let argv0 = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = argv0.deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(dir.appendingPathComponent("backstop").path)
            dir = dir.deletingLastPathComponent()
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/backstop").path)
        for c in candidates where FileManager.default.isExecutableFile(atPath: c) {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: c, isDirectory: &isDir), !isDir.boolValue { return c }
        }
        throw TestSupportError("the backstop binary was not found (looked in \(candidates)); run `swift build` before `swift test`")
    }

    /// Runs `backstop ARGS` to completion with `environment` added to (and `unset` removed
    /// from) this process's environment.
    @discardableResult
    public static func run(_ arguments: [String], environment: [String: String] = [:], check: Bool = false) throws -> CommandResult {
        try TestProcesses.run(try path(), arguments, environment: environment, check: check)
    }

    /// Starts `backstop serve` (or another long-running subcommand) and returns its pid.
    public static func spawn(_ arguments: [String], environment: [String: String], logFile: String) throws -> Int32 {
        try TestProcesses.spawn(try path(), arguments, logFile: logFile, environment: environment)
    }
}

/// A tiny blocking HTTP client for tests (status, body, elapsed seconds).
public enum TestHTTP {
    public struct Response: Sendable {
        public var status: Int
        public var body: String
        public var headers: [String: String]
        public var seconds: Double
    }

    public static func request(_ url: String, method: String = "GET", body: Data? = nil, timeout: Double = 5) throws -> Response {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        request.httpBody = body
        request.timeoutInterval = timeout
        let box = ResponseBox()
        let semaphore = DispatchSemaphore(value: 0)
        let started = Date()
        let task = URLSession.shared.dataTask(with: request) { data, response, error in
            box.set(data, response as? HTTPURLResponse, error)
            semaphore.signal()
        }
        task.resume()
        semaphore.wait()
        let (data, http, error) = box.get()
        guard let http else { throw TestSupportError("\(method) \(url) failed: \(error.map { "\($0)" } ?? "no response")") }
        var headers: [String: String] = [:]
        for (k, v) in http.allHeaderFields { headers["\(k)".lowercased()] = "\(v)" }
        return Response(status: http.statusCode, body: String(decoding: data ?? Data(), as: UTF8.self), headers: headers,
                        seconds: Date().timeIntervalSince(started))
    }

    /// Polls `url` until `condition` holds on the body, or fails after `timeout` seconds.
    @discardableResult
    public static func waitFor(_ url: String, timeout: Double, _ what: String, _ condition: (String) -> Bool) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        var last = ""
        while Date() < deadline {
            if let r = try? request(url, timeout: 2) {
                last = r.body
                if condition(r.body) { return r.body }
            }
            usleep(200_000)
        }
        throw TestSupportError("timed out after \(timeout) s waiting for \(what); last body:\n\(last.prefix(4000))")
    }
}

private final class ResponseBox: @unchecked Sendable {
    // Written once by URLSession's callback before the semaphore is signalled, read after wait().
    private var data: Data?
    private var response: HTTPURLResponse?
    private var error: (any Error)?
    func set(_ d: Data?, _ r: HTTPURLResponse?, _ e: (any Error)?) { data = d; response = r; error = e }
    func get() -> (Data?, HTTPURLResponse?, (any Error)?) { (data, response, error) }
}

/// Reads one sample value from a metrics text: `name{labels}` must match exactly the label
/// text given (or no labels when `labels` is empty).
public func metricValue(_ text: String, _ name: String, _ labels: String = "") -> Double? {
    let prefix = labels.isEmpty ? "\(name) " : "\(name){\(labels)} "
    for line in text.split(separator: "\n") where line.hasPrefix(prefix) {
        return Double(line.dropFirst(prefix.count))
    }
    return nil
}

import BackstopCore
import BackstopTestSupport
import Foundation
import HTTPClient
import Testing

/// The libcurl wrapper against a real HTTP server on loopback.
@Suite struct HTTPClientTests {
    @Test func postSendsBodyHeadersAndBearerAndReturnsStatusAndBody() async throws {
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        var request = HTTPRequest.postJSON(receiver.url + "/hook?x=1", Array("{\"a\":1}".utf8), bearerToken: Secret("s3cr3t-token"))
        request.headers.append(HTTPHeader("X-Test", "yes"))
        let response = try await HTTP.send(request)
        #expect(response.status == 200 && response.isSuccess)
        #expect(response.bodyText == "ok\n")
        #expect(response.header("content-type") == "text/plain")
        let got = try #require(receiver.requests.first)
        #expect(got.method == "POST" && got.path == "/hook?x=1")
        #expect(got.bodyText == "{\"a\":1}")
        #expect(got.headers["authorization"] == "Bearer s3cr3t-token")
        #expect(got.headers["content-type"] == "application/json")
        #expect(got.headers["x-test"] == "yes")
        #expect(got.headers["expect"] == nil)
    }

    @Test func serverErrorIsAResponseNotAnError() async throws {
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        receiver.failNext(1, status: 503)
        let response = try await HTTP.send(HTTPRequest(method: "GET", url: receiver.url + "/"))
        #expect(response.status == 503 && !response.isSuccess)
        #expect(try await HTTP.send(HTTPRequest(method: "GET", url: receiver.url + "/")).status == 200)
    }

    @Test func refusedConnectionNamesTheURLWithoutCredentials() async throws {
        let port = try TestEnvironment.freePort()
        let url = "http://alice:hunter2@127.0.0.1:\(port)/services/T0/B0/abcdefghij0123456789?token=topsecret"
        do {
            _ = try await HTTP.send(HTTPRequest(method: "POST", url: url, body: .bytes([1]), bearerToken: Secret("bearer-secret")))
            Issue.record("a refused connection succeeded")
        } catch let error as HTTPError {
            let text = error.description
            #expect(text.contains("127.0.0.1:\(port)/services/T0/B0/<redacted>?token=<redacted>"))
            for secret in ["hunter2", "alice", "topsecret", "abcdefghij0123456789", "bearer-secret"] {
                #expect(!text.contains(secret), "error text leaks \(secret): \(text)")
            }
            #expect(text.contains("curl error 7"))
            #expect(error.isRetryable)
        }
    }

    @Test func totalTimeoutStopsAHangingServer() async throws {
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        receiver.neverAnswer()
        let start = MonotonicClock.seconds()
        await #expect(throws: HTTPError.self) {
            _ = try await HTTP.send(HTTPRequest(method: "GET", url: receiver.url, totalTimeout: .milliseconds(400)))
        }
        let elapsed = MonotonicClock.seconds() - start
        #expect(elapsed >= 0.35 && elapsed < 3, "took \(elapsed) s")
        do {
            _ = try await HTTP.send(HTTPRequest(method: "GET", url: receiver.url, totalTimeout: .milliseconds(200)))
        } catch let error as HTTPError {
            #expect(error.kind == .timeout)
        }
    }

    @Test func cancellingTheTaskAbortsTheTransfer() async throws {
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        receiver.neverAnswer()
        let task = Task { try await HTTP.send(HTTPRequest(method: "GET", url: receiver.url, totalTimeout: .seconds(30))) }
        try await receiver.waitForRequests(1)
        let start = MonotonicClock.seconds()
        task.cancel()
        let result = await task.result
        #expect(MonotonicClock.seconds() - start < 3)
        guard case let .failure(error) = result, let http = error as? HTTPError else {
            Issue.record("expected a cancelled HTTPError, got \(result)")
            return
        }
        #expect(http.kind == .cancelled)
    }

    @Test func responseBodyIsBounded() async throws {
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        let response = try await HTTP.send(HTTPRequest(method: "GET", url: receiver.url, maxResponseBytes: 1))
        #expect(response.status == 200)
        #expect(response.body == Array("o".utf8))
        #expect(response.bodyTruncated)
    }

    @Test func putStreamsAFileRange() async throws {
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        let dir = try TestEnvironment.makeTempDirectory("httpclient")
        let bytes = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try AtomicFile.write(bytes, to: dir + "/blob")
        let response = try await HTTP.send(HTTPRequest(method: "PUT", url: receiver.url + "/blob", body: .file(path: dir + "/blob", offset: 1000, length: 200_000)))
        #expect(response.status == 200)
        let got = try #require(receiver.requests.first)
        #expect(got.method == "PUT")
        #expect(got.body == Array(bytes[1000..<201_000]))
        await #expect(throws: HTTPError.self) {
            _ = try await HTTP.send(HTTPRequest(method: "PUT", url: receiver.url, body: .file(path: dir + "/missing", offset: 0, length: 1)))
        }
    }

    @Test func awsSigV4SignsTheRequest() async throws {
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        let sig = AWSSigV4(region: "eu-west-1", accessKeyID: "AKIDEXAMPLE", secretAccessKey: Secret("wJalrXUtnFEMI"), sessionToken: Secret("session-tok"))
        _ = try await HTTP.send(HTTPRequest(method: "PUT", url: receiver.url + "/bucket/key", body: .bytes(Array("hello".utf8)), awsSigV4: sig))
        let got = try #require(receiver.requests.first)
        let auth = try #require(got.headers["authorization"])
        #expect(auth.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"))
        #expect(auth.contains("/eu-west-1/s3/aws4_request"))
        #expect(!auth.contains("wJalrXUtnFEMI"))
        #expect(got.headers["x-amz-date"] != nil)
        #expect(got.headers["x-amz-security-token"] == "session-tok")
    }

    @Test func redaction() {
        #expect(URLRedaction.redact("https://u:p@hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXX12") == "https://hooks.slack.com/services/T000/B000/<redacted>")
        #expect(URLRedaction.redact("http://am:9093/api/v2/alerts") == "http://am:9093/api/v2/alerts")
        #expect(URLRedaction.redact("http://h/p?sig=abc&x") == "http://h/p?sig=<redacted>&x")
        #expect(URLRedaction.redact("http://h/p#frag") == "http://h/p")
    }
}

@Suite struct HTTPDownloadTests {
    @Test func aSuccessfulBodyStreamsIntoAFileAndAnErrorBodyStaysInMemory() async throws {
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        let content = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        receiver.respond(with: content)
        let dir = try TestEnvironment.makeTempDirectory("download")
        // maxResponseBytes bounds memory only: the file gets everything.
        let response = try await HTTP.send(HTTPRequest(method: "GET", url: receiver.url + "/obj", maxResponseBytes: 1024, responseBodyFile: dir + "/obj.part"))
        #expect(response.status == 200)
        #expect(response.body.isEmpty && !response.bodyTruncated)
        #expect(response.bytesWrittenToFile == UInt64(content.count))
        #expect(try FileSystem.read(dir + "/obj.part") == content)

        receiver.failNext(1, status: 404)
        let missing = try await HTTP.send(HTTPRequest(method: "GET", url: receiver.url + "/nope", responseBodyFile: dir + "/nope.part"))
        #expect(missing.status == 404)
        #expect(missing.bodyText == "failing on purpose\n")
        #expect(!FileSystem.exists(dir + "/nope.part"))

        await #expect(throws: HTTPError.self) {
            _ = try await HTTP.send(HTTPRequest(method: "GET", url: receiver.url, responseBodyFile: dir + "/no/such/dir/file"))
        }
    }
}

@Suite struct CurlEasyReuseTests {
    @Test func oneHandleServesSeveralRequestsAndMethods() async throws {
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        let url = receiver.url
        let statuses = try await Blocking.run { () -> [Int] in
            let easy = try CurlEasy()
            return try [
                easy.perform(HTTPRequest(method: "DELETE", url: url + "/upload?uploadId=1")).status,
                easy.perform(HTTPRequest(method: "HEAD", url: url + "/obj")).status,
                easy.perform(HTTPRequest(method: "POST", url: url + "/empty")).status,
                easy.perform(HTTPRequest(method: "GET", url: url + "/get")).status,
            ]
        }
        #expect(statuses == [200, 200, 200, 200])
        let seen = receiver.requests.map { "\($0.method) \($0.path) \($0.body.count)" }
        #expect(seen == ["DELETE /upload?uploadId=1 0", "HEAD /obj 0", "POST /empty 0", "GET /get 0"])
    }
}

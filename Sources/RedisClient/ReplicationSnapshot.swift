import BackstopCore

/// Choices for a snapshot fetch.
public struct SnapshotOptions: Sendable, Equatable {
    /// Declare `REPLCONF capa eof`, letting a master with `repl-diskless-sync yes` stream the
    /// snapshot straight from its fork (no RDB file written on the server). The price is the
    /// server's `repl-diskless-sync-delay` (5 s by default), which it waits for other replicas
    /// before it starts. Off: the master writes the RDB to its disk first and sends it with a
    /// length prefix, with no delay.
    public var allowDiskless: Bool
    /// Bytes read per `recv`.
    public var chunkSize: Int
    /// Seconds to wait from `PSYNC` until the payload starts. The server's keepalives reset
    /// the per-read timeout, so without this bound a master whose snapshot never starts (a
    /// stuck fork, a BGSAVE that keeps failing) would hold the backup forever.
    public var startTimeout: Double

    public init(allowDiskless: Bool = false, chunkSize: Int = 256 * 1024, startTimeout: Double = 600) {
        self.allowDiskless = allowDiskless
        self.chunkSize = max(4096, chunkSize)
        self.startTimeout = startTimeout
    }
}

/// What a finished, checked snapshot fetch produced.
public struct SnapshotInfo: Sendable, Equatable {
    /// The server the snapshot came from.
    public var source: Endpoint
    /// The RDB format version from the header (`REDIS0010` → 10).
    public var rdbVersion: Int
    /// Bytes of RDB passed to the sink.
    public var bytes: Int64
    /// `.verified(crc)` or `.disabled` (server runs `rdbchecksum no`: reported, not verified).
    public var checksum: RDBValidator.Checksum
    /// How the server framed the payload.
    public var framing: RDBTransferParser.Framing
    /// Newline keepalives received while the server prepared the snapshot.
    public var keepalives: Int
    /// Whether the server accepted `REPLCONF rdb-only 1` (Redis 7+): it then does not keep
    /// this connection as a replica after the transfer.
    public var rdbOnly: Bool

    /// True when the CRC-64 was checked and matched.
    public var checksumVerified: Bool {
        if case .verified = checksum { return true }
        return false
    }
}

/// Fetches an RDB snapshot over the replication protocol, as `redis-cli --rdb` does, and
/// streams it to `sink` chunk by chunk; nothing holds the whole file.
///
/// Handshake over a hiredis `RedisConnection` (connect with timeout, `AUTH [username]
/// password` when a password is given), `REPLCONF rdb-only 1` (refusal ignored: older
/// servers), `REPLCONF capa eof` when `options.allowDiskless`, then `PSYNC ? -1`, after which
/// the connection's socket is read directly (`readStream`: hiredis's already-buffered bytes
/// first). The answer is parsed by `RDBTransferParser` (keepalives, `+FULLRESYNC`, both
/// framings, refusals) and checked by `RDBValidator` (header while streaming, CRC-64 at the end).
///
/// Blocking: run it on `Blocking.run` (or use `Redis.fetchSnapshot`). `timeout` bounds the
/// connect and every wait for data; the server sends a keepalive each second while it
/// prepares the snapshot, so a long BGSAVE does not trip it (`options.startTimeout` bounds
/// that preparation instead).
///
/// Throws `RedisError` (`.connect`, `.authentication`, `.io`, `.snapshot`) or whatever `sink`
/// throws. The sink may already have received bytes when it throws: a caller must treat any
/// throw as "no backup" and discard what the sink wrote.
///
/// `shouldContinue` is asked after every read, keepalives included (one a second while the
/// server prepares the snapshot), so a shutdown does not wait for a long BGSAVE to finish;
/// when it answers false the fetch throws `CancellationError`.
public func fetchSnapshot(from endpoint: Endpoint, username: String? = nil, password: Secret? = nil,
                          timeout: Double, options: SnapshotOptions = SnapshotOptions(),
                          shouldContinue: () -> Bool = { true },
                          sink: (UnsafeRawBufferPointer) throws -> Void) throws -> SnapshotInfo {
    let connection = try RedisConnection(to: endpoint, username: username, password: password, timeout: timeout)

    let rdbOnlyReply = try connection.command(["REPLCONF", "rdb-only", "1"])
    if let message = rdbOnlyReply.errorMessage, message.hasPrefix("NOAUTH") || message.hasPrefix("NOPERM") {
        let kind: RedisError.Kind = message.hasPrefix("NOAUTH") ? .authentication : .snapshot
        throw RedisError(kind, endpoint: endpoint, operation: "REPLCONF", message: message)
    }
    if options.allowDiskless {
        _ = try connection.command(["REPLCONF", "capa", "eof"])
    }

    // The answer to PSYNC is not one RESP reply: a master waiting to start its BGSAVE sends
    // bare newlines before `+FULLRESYNC` (hiredis's reader would call them a protocol error),
    // then more newlines, then the payload. So it is read from the socket, by the parser.
    try connection.sendStreamingCommand(["PSYNC", "?", "-1"])
    let syncSent = MonotonicClock.seconds()

    var parser = RDBTransferParser()
    var validator = RDBValidator()
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: options.chunkSize, alignment: 16)
    defer { buffer.deallocate() }
    do {
        while true {
            let count = try connection.readStream(into: buffer, operation: "PSYNC (receiving the snapshot)")
            guard shouldContinue() else { throw CancellationError() }
            if count == 0 {
                try parser.finish()
                break
            }
            let complete = try parser.feed(UnsafeRawBufferPointer(rebasing: buffer[0..<count])) { chunk in
                try validator.update(chunk)
                try sink(chunk)
            }
            if complete { break }
            if parser.framing == nil, MonotonicClock.seconds() - syncSent > options.startTimeout {
                throw RedisError(.snapshot, endpoint: endpoint, operation: "PSYNC",
                                 message: "the server did not start sending the snapshot within \(options.startTimeout) s "
                                     + "(\(parser.keepalives) keepalives received); check its log for a failing or stuck BGSAVE")
            }
        }
        let summary = try validator.finish()
        guard let framing = parser.framing else {
            throw RedisError(.snapshot, endpoint: endpoint, operation: "PSYNC", message: "no snapshot framing received")
        }
        return SnapshotInfo(source: endpoint, rdbVersion: summary.rdbVersion, bytes: summary.bytes,
                            checksum: summary.checksum, framing: framing, keepalives: parser.keepalives,
                            rdbOnly: rdbOnlyReply.isStatus)
    } catch let failure as RDBTransferParser.Failure {
        throw RedisError(.snapshot, endpoint: endpoint, operation: "PSYNC", message: failure.description)
    } catch let failure as RDBValidator.Failure {
        throw RedisError(.snapshot, endpoint: endpoint, operation: "snapshot check", message: failure.description)
    }
}

import BackstopCore

/// Typed forms of the commands the health loop and the backup jobs use. Each throws
/// `RedisError(.server)` on an error reply and `.unexpectedReply` on a reply of the wrong shape.
extension RedisConnection {
    /// `PING`; succeeds on `PONG`.
    public func ping() throws {
        let reply = try call(["PING"])
        guard reply.string == "PONG" else { throw unexpected("PING", reply) }
    }

    /// `INFO [section]` as field → value (section headers and blank lines dropped).
    public func info(_ section: String? = nil) throws -> [String: String] {
        let reply = try call(["INFO"] + (section.map { [$0] } ?? []))
        guard case .bulk = reply, let text = reply.string else { throw unexpected("INFO", reply) }
        return Self.parseInfo(text)
    }

    /// Parses `INFO` text: `key:value` lines, `#` headers ignored.
    public static func parseInfo(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for rawLine in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            // "\r\n" is one Character in Swift, so the split above already removed it.
            let line = rawLine
            guard !line.isEmpty, !line.hasPrefix("#"), let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = String(line[line.index(after: colon)...])
        }
        return fields
    }

    /// `ROLE`.
    public func role() throws -> RedisRole {
        let reply = try call(["ROLE"])
        guard let elements = reply.array, let kind = elements.first?.string else { throw unexpected("ROLE", reply) }
        switch kind {
        case "master":
            let offset = elements.count > 1 ? elements[1].integer ?? 0 : 0
            let replicas: [Endpoint] = (elements.count > 2 ? elements[2].array ?? [] : []).compactMap { entry in
                guard let parts = entry.array, parts.count >= 2, let host = parts[0].string,
                      let port = parts[1].integer else { return nil }
                return Endpoint(host: host, port: Int(port))
            }
            return .master(offset: offset, replicas: replicas)
        case "slave", "replica":
            guard elements.count >= 5, let host = elements[1].string, let port = elements[2].integer else {
                throw unexpected("ROLE", reply)
            }
            return .replica(master: Endpoint(host: host, port: Int(port)), state: elements[3].string ?? "",
                            offset: elements[4].integer ?? -1)
        case "sentinel":
            return .sentinel(masters: (elements.count > 1 ? elements[1].array ?? [] : []).compactMap(\.string))
        default:
            throw unexpected("ROLE", reply)
        }
    }

    /// `DBSIZE` of the selected database (0 unless the caller ran SELECT).
    public func dbsize() throws -> Int {
        let reply = try call(["DBSIZE"])
        guard case .integer(let count) = reply else { throw unexpected("DBSIZE", reply) }
        return Int(count)
    }

    /// Keys and keys-with-TTL per logical database, from `INFO keyspace` (empty databases absent).
    public func keyspace() throws -> [Int: KeyspaceCounts] {
        Self.parseKeyspace(try info("keyspace"))
    }

    /// Parses the `dbN` fields of `INFO keyspace`.
    public static func parseKeyspace(_ info: [String: String]) -> [Int: KeyspaceCounts] {
        var result: [Int: KeyspaceCounts] = [:]
        for (key, value) in info where key.hasPrefix("db") {
            guard let index = Int(key.dropFirst(2)) else { continue }
            var counts = KeyspaceCounts(keys: 0, expires: 0)
            for pair in value.split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, let number = Int(parts[1]) else { continue }
                if parts[0] == "keys" { counts.keys = number }
                if parts[0] == "expires" { counts.expires = number }
            }
            result[index] = counts
        }
        return result
    }

    /// `CONFIG GET pattern` as name → value. Throws `.server` when CONFIG is renamed or denied.
    public func configGet(_ pattern: String) throws -> [String: String] {
        let reply = try call(["CONFIG", "GET", pattern])
        guard let fields = reply.fieldMap else { throw unexpected("CONFIG GET", reply) }
        return fields
    }

    // MARK: Sentinel

    /// `SENTINEL GET-MASTER-ADDR-BY-NAME name`; nil when the Sentinel does not know the name.
    public func sentinelGetMasterAddr(_ name: String) throws -> Endpoint? {
        let reply = try call(["SENTINEL", "GET-MASTER-ADDR-BY-NAME", name])
        if reply == .null { return nil }
        guard let parts = reply.array, parts.count == 2, let host = parts[0].string,
              let port = parts[1].integer else { throw unexpected("SENTINEL GET-MASTER-ADDR-BY-NAME", reply) }
        return Endpoint(host: host, port: Int(port))
    }

    /// `SENTINEL CKQUORUM name`. `-NOQUORUM` is an answer (`ok == false`), not a throw; an
    /// unknown master name (`-ERR No such master…`) throws.
    public func sentinelCKQuorum(_ name: String) throws -> QuorumCheck {
        let reply = try command(["SENTINEL", "CKQUORUM", name])
        switch reply {
        case .status(let text): return QuorumCheck(ok: text.hasPrefix("OK"), message: text)
        case .error(let text) where text.hasPrefix("NOQUORUM"): return QuorumCheck(ok: false, message: text)
        case .error(let text): throw RedisError(.server, endpoint: endpoint, operation: "SENTINEL CKQUORUM", message: text)
        default: throw unexpected("SENTINEL CKQUORUM", reply)
        }
    }

    /// `SENTINEL MASTER name`.
    public func sentinelMaster(_ name: String) throws -> SentinelMasterState {
        let reply = try call(["SENTINEL", "MASTER", name])
        guard let fields = reply.fieldMap else { throw unexpected("SENTINEL MASTER", reply) }
        return SentinelMasterState(fields: fields)
    }

    /// `SENTINEL SENTINELS name`: the other Sentinels this one knows, each as field → value.
    public func sentinelSentinels(_ name: String) throws -> [[String: String]] {
        try fieldMaps(["SENTINEL", "SENTINELS", name])
    }

    /// `SENTINEL REPLICAS name` (falling back to `SENTINEL SLAVES` on servers before 5.0).
    public func sentinelReplicas(_ name: String) throws -> [[String: String]] {
        do {
            return try fieldMaps(["SENTINEL", "REPLICAS", name])
        } catch let error as RedisError where error.kind == .server && error.message.lowercased().contains("unknown") {
            return try fieldMaps(["SENTINEL", "SLAVES", name])
        }
    }

    private func fieldMaps(_ arguments: [String]) throws -> [[String: String]] {
        let reply = try call(arguments)
        guard let entries = reply.array else { throw unexpected(arguments.prefix(2).joined(separator: " "), reply) }
        return try entries.map { entry in
            guard let fields = entry.fieldMap else { throw unexpected(arguments.prefix(2).joined(separator: " "), reply) }
            return fields
        }
    }

    private func unexpected(_ operation: String, _ reply: RedisReply) -> RedisError {
        let shown: String
        switch reply {
        case .array(let elements): shown = "an array of \(elements.count)"
        case .bulk(let bytes): shown = "a bulk string of \(bytes.count) bytes"
        default: shown = "\(reply)"
        }
        return RedisError(.unexpectedReply, endpoint: endpoint, operation: operation, message: "unexpected reply: \(shown)")
    }
}

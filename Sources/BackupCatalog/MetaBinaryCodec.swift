/// A compact binary form of `BackupMeta` for the catalog index: decoding it is a copy of
/// lengths and bytes, no JSON parse (parsing 100,000 `.meta` files is most of a listing's cost).
/// Every field of `BackupMeta` is written; `CatalogIndexTests` checks the round trip with every
/// field set, so a field added to `BackupMeta` and forgotten here fails a test instead of
/// silently vanishing from listings.
enum MetaBinaryCodec {
    /// Bumped whenever the layout changes; an index of another version is ignored and rebuilt.
    static let version: UInt8 = 2

    static func encode(_ m: BackupMeta, into w: inout ByteWriter) {
        w.string(m.timestamp)
        w.string(m.type)
        w.optional(m.database)
        w.optional(m.size)
        w.optional(m.file)
        w.optional(m.status)
        w.optional(m.kind?.rawValue)
        w.optional(m.target)
        w.optional(m.sizeBytes)
        w.optional(m.uncompressedBytes)
        w.optional(m.sha256)
        w.optional(m.durationSeconds)
        w.optional(m.startedAt)
        w.optional(m.finishedAt)
        w.optional(m.compression)
        w.optional(m.serverVersion)
        w.optional(m.toolVersion)
        w.optional(m.startLSN)
        w.optional(m.endLSN)
        w.optional(m.timeline.map { Int64($0) })
        if let files = m.files {
            w.byte(1)
            w.unsigned(UInt64(files.count))
            for f in files {
                w.string(f.name)
                w.unsigned(f.sizeBytes)
                w.string(f.sha256)
            }
        } else {
            w.byte(0)
        }
        w.optional(m.redisVersion)
        w.optional(m.rdbVersion.map { Int64($0) })
        w.optional(m.master)
        w.optional(m.source)
        w.optional(m.sourceRole)
        w.counts(m.keys)
        w.counts(m.expires)
        w.optional(m.method)
        w.optional(m.rdbChecksum)
        w.optional(m.encryption)
        w.optional(m.recipients)
    }

    /// nil when the bytes are not a complete record (a damaged index: the `.meta` is read instead).
    static func decode(_ r: inout ByteReader) -> BackupMeta? {
        guard let timestamp = r.string(), let type = r.string() else { return nil }
        var m = BackupMeta(timestamp: timestamp, type: type)
        guard let database = r.optionalString(), let size = r.optionalString(), let file = r.optionalString(),
              let status = r.optionalString(), let kind = r.optionalString(), let target = r.optionalString(),
              let sizeBytes = r.optionalUnsigned(), let uncompressed = r.optionalUnsigned(), let sha256 = r.optionalString(),
              let duration = r.optionalDouble(), let startedAt = r.optionalString(), let finishedAt = r.optionalString(),
              let compression = r.optionalString(), let serverVersion = r.optionalString(), let toolVersion = r.optionalString(),
              let startLSN = r.optionalString(), let endLSN = r.optionalString(), let timeline = r.optionalSigned()
        else { return nil }
        m.database = database
        m.size = size
        m.file = file
        m.status = status
        if let kind {
            guard let k = BackupKind(rawValue: kind) else { return nil }
            m.kind = k
        }
        m.target = target
        m.sizeBytes = sizeBytes
        m.uncompressedBytes = uncompressed
        m.sha256 = sha256
        m.durationSeconds = duration
        m.startedAt = startedAt
        m.finishedAt = finishedAt
        m.compression = compression
        m.serverVersion = serverVersion
        m.toolVersion = toolVersion
        m.startLSN = startLSN
        m.endLSN = endLSN
        m.timeline = timeline.map { Int($0) }
        guard let hasFiles = r.byte() else { return nil }
        if hasFiles == 1 {
            guard let count = r.unsigned(), count <= UInt64(r.remaining) else { return nil }
            var files: [BackupMeta.FileEntry] = []
            files.reserveCapacity(Int(count))
            for _ in 0..<count {
                guard let name = r.string(), let bytes = r.unsigned(), let sum = r.string() else { return nil }
                files.append(.init(name: name, sizeBytes: bytes, sha256: sum))
            }
            m.files = files
        }
        guard let redisVersion = r.optionalString(), let rdbVersion = r.optionalSigned(), let master = r.optionalString(),
              let source = r.optionalString(), let sourceRole = r.optionalString(), let keys = r.counts(), let expires = r.counts(),
              let method = r.optionalString(), let rdbChecksum = r.optionalString(),
              let encryption = r.optionalString(), let recipients = r.optionalString()
        else { return nil }
        m.redisVersion = redisVersion
        m.rdbVersion = rdbVersion.map { Int($0) }
        m.master = master
        m.source = source
        m.sourceRole = sourceRole
        m.keys = keys
        m.expires = expires
        m.method = method
        m.rdbChecksum = rdbChecksum
        m.encryption = encryption
        m.recipients = recipients
        return m
    }
}

/// Appends little-endian integers, LEB128 lengths and raw UTF-8 to one buffer.
struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func byte(_ b: UInt8) { bytes.append(b) }

    mutating func unsigned(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func fixed64(_ v: UInt64) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func string(_ s: String) {
        unsigned(UInt64(s.utf8.count))
        bytes.append(contentsOf: s.utf8)
    }

    mutating func optional(_ s: String?) {
        guard let s else { return byte(0) }
        byte(1)
        string(s)
    }

    mutating func optional(_ v: UInt64?) {
        guard let v else { return byte(0) }
        byte(1)
        unsigned(v)
    }

    mutating func optional(_ v: Int64?) {
        guard let v else { return byte(0) }
        byte(1)
        fixed64(UInt64(bitPattern: v))
    }

    mutating func optional(_ v: Double?) {
        guard let v else { return byte(0) }
        byte(1)
        fixed64(v.bitPattern)
    }

    mutating func counts(_ d: [String: Int]?) {
        guard let d else { return byte(0) }
        byte(1)
        unsigned(UInt64(d.count))
        for key in d.keys.sorted() {
            string(key)
            fixed64(UInt64(bitPattern: Int64(d[key]!)))
        }
    }
}

/// Reads what `ByteWriter` wrote, bounds-checked: every read past the end is nil. The
/// optional readers return `String??` and the like: nil when the data is damaged,
/// `.some(nil)` for an absent field.
struct ByteReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var offset: Int

    init(_ bytes: UnsafeBufferPointer<UInt8>, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }

    mutating func byte() -> UInt8? {
        guard offset < bytes.count else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func unsigned() -> UInt64? {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while let b = byte() {
            v |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return v }
            shift += 7
            if shift > 63 { return nil }
        }
        return nil
    }

    mutating func fixed64() -> UInt64? {
        guard remaining >= 8 else { return nil }
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
        offset += 8
        return v
    }

    /// The next `count` bytes, in place.
    mutating func slice(_ count: Int) -> UnsafeBufferPointer<UInt8>? {
        guard count >= 0, remaining >= count else { return nil }
        defer { offset += count }
        return UnsafeBufferPointer(rebasing: bytes[offset..<(offset + count)])
    }

    mutating func string() -> String? {
        guard let n = unsigned(), n <= UInt64(remaining), let s = slice(Int(n)) else { return nil }
        return String(decoding: s, as: UTF8.self)
    }

    private mutating func present() -> Bool? {
        guard let b = byte(), b <= 1 else { return nil }
        return b == 1
    }

    mutating func optionalString() -> String?? {
        guard let p = present() else { return nil }
        guard p else { return .some(nil) }
        return string().map { .some($0) }
    }

    mutating func optionalUnsigned() -> UInt64?? {
        guard let p = present() else { return nil }
        guard p else { return .some(nil) }
        return unsigned().map { .some($0) }
    }

    mutating func optionalSigned() -> Int64?? {
        guard let p = present() else { return nil }
        guard p else { return .some(nil) }
        return fixed64().map { .some(Int64(bitPattern: $0)) }
    }

    mutating func optionalDouble() -> Double?? {
        guard let p = present() else { return nil }
        guard p else { return .some(nil) }
        return fixed64().map { .some(Double(bitPattern: $0)) }
    }

    mutating func counts() -> [String: Int]?? {
        guard let p = present() else { return nil }
        guard p else { return .some(nil) }
        guard let n = unsigned(), n <= UInt64(remaining) else { return nil }
        var d: [String: Int] = [:]
        for _ in 0..<n {
            guard let k = string(), let v = fixed64() else { return nil }
            d[k] = Int(Int64(bitPattern: v))
        }
        return .some(d)
    }
}

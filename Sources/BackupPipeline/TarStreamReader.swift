/// One member of a tar stream, as its header announced it.
public struct TarMember: Sendable, Equatable {
    /// The path inside the archive, without a leading `./` (ustar prefix joined).
    public var name: String
    public var size: UInt64
    /// The ustar type flag (`0` or NUL: a regular file, `5`: a directory, `2`: a symlink …).
    public var type: UInt8

    public var isRegularFile: Bool { type == UInt8(ascii: "0") || type == 0 }
}

/// Why a tar stream was refused.
public struct TarStreamError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Walks a ustar stream as its bytes pass by (the output of `pg_basebackup -D - -Ft`), without
/// storing it: headers are parsed (checksum checked, octal or base-256 sizes), each member's
/// data handed to `data` and its end to `end`. This is how an encrypted base backup is looked
/// into in memory — its `backup_manifest` captured while the stream is written, every file
/// hashed when it is verified — so no plaintext copy of the tar ever lands on disk.
///
/// Use from one thread.
public final class TarStreamReader {
    public typealias Begin = (TarMember) throws -> Void
    public typealias Bytes = (UnsafeRawBufferPointer) throws -> Void
    public typealias End = () throws -> Void

    private let begin: Begin
    private let data: Bytes
    private let end: End
    private var header: [UInt8] = []
    /// Data bytes of the current member still to come.
    private var remaining: UInt64 = 0
    /// Zero bytes after the member's data, up to the next 512-byte boundary.
    private var padding: Int = 0
    private var inMember = false

    /// Members seen so far.
    public private(set) var members = 0
    /// True once the end-of-archive marker (a zero block) was read.
    public private(set) var sawEnd = false

    public init(begin: @escaping Begin, data: @escaping Bytes, end: @escaping End = {}) {
        self.begin = begin
        self.data = data
        self.end = end
        header.reserveCapacity(512)
    }

    /// Feeds the next bytes of the stream, in any slices.
    public func feed(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            if remaining > 0 {
                let n = Int(min(remaining, UInt64(bytes.count - offset)))
                try data(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)]))
                remaining -= UInt64(n)
                offset += n
                if remaining == 0 { try closeMember() }
                continue
            }
            if padding > 0 {
                let n = min(padding, bytes.count - offset)
                padding -= n
                offset += n
                continue
            }
            if sawEnd {
                // After the end marker only zero padding may follow (tar pads to its record size).
                guard bytes[offset] == 0 else { throw TarStreamError("data follows the tar end-of-archive marker") }
                offset += 1
                continue
            }
            let n = min(512 - header.count, bytes.count - offset)
            header.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)]))
            offset += n
            if header.count == 512 { try parseHeader() }
        }
    }

    /// End of input: the stream must end between members, after the end-of-archive marker.
    public func finish() throws {
        guard remaining == 0, header.isEmpty, !inMember else {
            throw TarStreamError("the tar stream is truncated (it ends inside a member or a header)")
        }
        guard sawEnd else { throw TarStreamError("the tar stream ends without its end-of-archive marker") }
    }

    private func closeMember() throws {
        inMember = false
        try end()
    }

    private func parseHeader() throws {
        defer { header.removeAll(keepingCapacity: true) }
        if header.allSatisfy({ $0 == 0 }) {
            sawEnd = true
            return
        }
        var sum: UInt32 = 0
        for (index, byte) in header.enumerated() { sum += (148..<156).contains(index) ? 32 : UInt32(byte) }
        guard let recorded = Self.octal(header[148..<156]), recorded == UInt64(sum) else {
            throw TarStreamError("tar header \(members + 1) fails its checksum (the stream is damaged or not a tar)")
        }
        var name = Self.string(header[0..<100])
        if header[257..<262].elementsEqual("ustar".utf8) {
            let prefix = Self.string(header[345..<500])
            if !prefix.isEmpty { name = prefix + "/" + name }
        }
        while name.hasPrefix("./") { name.removeFirst(2) }
        let size: UInt64
        if header[124] & 0x80 != 0 {
            // Base-256 (sizes of 8 GiB and more): big-endian in the remaining bytes.
            size = header[125..<136].reduce(UInt64(0)) { ($0 << 8) | UInt64($1) }
        } else if let octal = Self.octal(header[124..<136]) {
            size = octal
        } else {
            throw TarStreamError("tar header of \(name) has an unreadable size")
        }
        let type = header[156]
        members += 1
        // Only regular files (and the headers tar uses for long names) carry data.
        let carries = type == UInt8(ascii: "0") || type == 0 || type == UInt8(ascii: "7")
            || type == UInt8(ascii: "x") || type == UInt8(ascii: "g") || type == UInt8(ascii: "L") || type == UInt8(ascii: "K")
        let length = carries ? size : 0
        try begin(TarMember(name: name, size: length, type: type))
        remaining = length
        padding = Int((512 - length % 512) % 512)
        inMember = true
        if remaining == 0 { try closeMember() }
    }

    private static func string(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    private static func octal(_ bytes: ArraySlice<UInt8>) -> UInt64? {
        var value: UInt64 = 0
        var digits = 0
        for byte in bytes {
            if byte == 0 || byte == 32 {
                if digits > 0 { break }
                continue
            }
            guard (48...55).contains(byte) else { return nil }
            value = value * 8 + UInt64(byte - 48)
            digits += 1
        }
        return digits > 0 ? value : nil
    }
}

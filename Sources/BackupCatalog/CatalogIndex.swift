import BackstopCore
import Foundation

/// A cache of the decoded `.meta` files of one catalog folder, kept beside them as
/// `<folder>/.catalog-index` (hidden, so no tool takes it for a backup), so that listing
/// 100,000 backups is one `fstatat` per `.meta` instead of an open, read and JSON parse each.
///
/// The files stay the truth. The folder is still listed on every run (a new or removed backup
/// is seen at once), and a cached `.meta` is used only while the file's inode, size, change
/// and modification times are exactly those recorded; anything else reads the file. A `.meta`
/// changed in the last second is not cached at all (timestamps are coarser than writes,
/// the same "racy" rule git applies to its index). An index that is absent, unreadable, of
/// another version or damaged counts as empty and is rewritten by the next full listing.
/// Cleanup re-reads the real files of a backup before it deletes it (`BackupCleanup`).
struct CatalogIndex: Sendable {
    static let fileName = ".catalog-index"
    static let magic: [UInt8] = Array("BSTPCIX".utf8) + [MetaBinaryCodec.version]
    /// How recent a `.meta` change may be and not be cached (file times advance in clock
    /// ticks of a few milliseconds; a second is far beyond any tick).
    static let racySeconds: Double = 1

    /// What `stat` says of a `.meta`: any difference means the file changed.
    struct Stamp: Equatable, Sendable {
        var inode: UInt64, size: UInt64, mtimeSeconds: UInt64, mtimeNanoseconds: UInt64,
            ctimeSeconds: UInt64, ctimeNanoseconds: UInt64

        init(_ st: stat) {
            inode = UInt64(st.st_ino)
            size = UInt64(bitPattern: Int64(st.st_size))
            mtimeSeconds = UInt64(bitPattern: Int64(st.st_mtim.tv_sec))
            mtimeNanoseconds = UInt64(bitPattern: Int64(st.st_mtim.tv_nsec))
            ctimeSeconds = UInt64(bitPattern: Int64(st.st_ctim.tv_sec))
            ctimeNanoseconds = UInt64(bitPattern: Int64(st.st_ctim.tv_nsec))
        }

        init(inode: UInt64, size: UInt64, mtimeSeconds: UInt64, mtimeNanoseconds: UInt64, ctimeSeconds: UInt64, ctimeNanoseconds: UInt64) {
            self.inode = inode
            self.size = size
            self.mtimeSeconds = mtimeSeconds
            self.mtimeNanoseconds = mtimeNanoseconds
            self.ctimeSeconds = ctimeSeconds
            self.ctimeNanoseconds = ctimeNanoseconds
        }

        /// Changed so recently (within `racySeconds` of `now`) that a later change could keep
        /// the same times.
        func isRacy(now: Double) -> Bool {
            let m = Double(Int64(bitPattern: mtimeSeconds)) + Double(mtimeNanoseconds) / 1e9
            let c = Double(Int64(bitPattern: ctimeSeconds)) + Double(ctimeNanoseconds) / 1e9
            return max(m, c) > now - CatalogIndex.racySeconds
        }
    }

    /// One cached `.meta`: its stamp and its decoded content (nil: the file could not be read
    /// or decoded, which the listing shows as an incomplete backup).
    struct Record: Sendable {
        var name: String
        var stamp: Stamp
        var meta: BackupMeta?
    }

    private struct Slot: Sendable {
        var stamp: Stamp
        var readable: Bool
        var blob: Range<Int>
    }

    private let bytes: [UInt8]
    private let slots: [String: Slot]

    /// The number of `.meta` files the index describes.
    var count: Int { slots.count }

    private init(bytes: [UInt8], slots: [String: Slot]) {
        self.bytes = bytes
        self.slots = slots
    }

    static let empty = CatalogIndex(bytes: [], slots: [:])

    /// The index of the open folder `folder`; empty when there is none or it is not usable.
    static func load(folder: Int32) -> CatalogIndex {
        let fd = openat(folder, fileName, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .empty }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > magic.count else { return .empty }
        let size = Int(st.st_size)
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            var done = 0
            while done < size {
                let n = read(fd, buffer.baseAddress! + done, size - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                done += n
            }
            count = done
        }
        guard bytes.count == size, Array(bytes[0..<magic.count]) == magic else { return .empty }
        var slots: [String: Slot] = [:]
        bytes.withUnsafeBufferPointer { buffer in
            var r = ByteReader(buffer, offset: magic.count)
            guard let n = r.unsigned(), n <= UInt64(r.remaining) else { return }
            slots.reserveCapacity(Int(n))
            for _ in 0..<n {
                guard let name = r.string(), let inode = r.fixed64(), let size = r.fixed64(), let ms = r.fixed64(), let mn = r.fixed64(),
                      let cs = r.fixed64(), let cn = r.fixed64(), let readable = r.byte(), let length = r.unsigned(),
                      length <= UInt64(r.remaining) else { slots = [:]; return }
                let start = r.offset
                r.offset += Int(length)
                slots[name] = Slot(stamp: Stamp(inode: inode, size: size, mtimeSeconds: ms, mtimeNanoseconds: mn, ctimeSeconds: cs, ctimeNanoseconds: cn),
                                   readable: readable == 1, blob: start..<(start + Int(length)))
            }
            if r.remaining != 0 { slots = [:] }
        }
        return CatalogIndex(bytes: bytes, slots: slots)
    }

    /// The cached content of the `.meta` `name` if its stamp is still `stamp`: `.some(meta)`
    /// (meta nil for a `.meta` known to be unreadable), or nil when the file must be read.
    func lookup(_ name: String, stamp: Stamp) -> BackupMeta?? {
        guard let slot = slots[name], slot.stamp == stamp else { return nil }
        guard slot.readable else { return .some(nil) }
        return bytes.withUnsafeBufferPointer { buffer -> BackupMeta?? in
            var r = ByteReader(UnsafeBufferPointer(rebasing: buffer[slot.blob]))
            guard let meta = MetaBinaryCodec.decode(&r), r.remaining == 0 else { return nil }
            return .some(meta)
        }
    }

    /// Replaces the index of `folderPath` with `records` (atomically; a cache, so a failure —
    /// a read-only folder, another user's — is only a slower next listing).
    static func write(_ records: [Record], folderPath: String) {
        var w = ByteWriter()
        w.bytes.reserveCapacity(64 + records.count * 320)
        w.bytes.append(contentsOf: magic)
        w.unsigned(UInt64(records.count))
        var blob = ByteWriter()
        for record in records {
            w.string(record.name)
            let s = record.stamp
            for v in [s.inode, s.size, s.mtimeSeconds, s.mtimeNanoseconds, s.ctimeSeconds, s.ctimeNanoseconds] { w.fixed64(v) }
            blob.bytes.removeAll(keepingCapacity: true)
            if let meta = record.meta {
                w.byte(1)
                MetaBinaryCodec.encode(meta, into: &blob)
            } else {
                w.byte(0)
            }
            w.unsigned(UInt64(blob.bytes.count))
            w.bytes.append(contentsOf: blob.bytes)
        }
        try? AtomicFile.write(w.bytes, to: folderPath + "/" + fileName, mode: 0o640)
    }
}

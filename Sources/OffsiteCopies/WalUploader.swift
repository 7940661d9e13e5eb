import BackstopCore
import BackstopMetrics
import S3
import WalArchive

/// Copies the WAL archive to the bucket: every completed segment, `.history` and `.backup`
/// file of `postgres/wal/` without an upload marker (or whose marker names other bytes) goes
/// to `postgres/wal/<name>.gz` under BACKUP_S3_PREFIX — the `.gz` first, then its `.meta`, so
/// a `.meta` in S3 always describes a complete copy — and only then is the local marker
/// written. History files go first (every later segment's chain needs them), then the
/// segments oldest first. The first failure stops the run (the endpoint is probably down) and
/// leaves the rest pending for the next one. Outcomes land in `.state/s3_wal_uploads.json`.
public struct WalUploader: Sendable {
    public struct Result: Sendable {
        public var uploaded: [String] = []
        public var failed: String?
        public var error: String?
        /// Files still not in the bucket.
        public var pending = 0
        public var lastSegment: Double = 0
    }

    public let settings: S3Settings
    public let backupDir: String

    public init(settings: S3Settings, backupDir: String) {
        self.settings = settings
        self.backupDir = backupDir
    }

    /// The key of an archived file's `.gz` (or, with `.meta` appended, of its record).
    public func key(_ name: String) -> String { settings.key(for: "postgres/wal/" + name + ".gz") }
    /// The key of the file a `.meta` describes: `NAME.gz`, or `NAME.gz.age` for an encrypted
    /// segment (the bucket keeps the name, so a listing tells which need the key).
    public func key(for meta: WalArchiveMeta) -> String { settings.key(for: "postgres/wal/" + meta.file) }
    public func metaKey(_ name: String) -> String { settings.key(for: "postgres/wal/" + name + ".meta") }

    /// The archived files not in the bucket, in upload order, and the newest segment that is.
    static func pending(archive: WalArchive) -> (files: [WalArchiveMeta], lastSegment: Double) {
        let contents = archive.contents()
        let markers = WalUploadMarker.all(in: archive)
        var lastSegment = 0.0
        var todo: [(rank: Int, order: String, meta: WalArchiveMeta)] = []
        for file in contents.files {
            let uploaded = markers[file.meta.name]?.sha256 == file.meta.sha256
            switch file.name {
            case .history:
                if !uploaded { todo.append((0, file.meta.name, file.meta)) }
            case .segment(let s):
                if uploaded { lastSegment = max(lastSegment, file.meta.archivedAtSeconds) }
                // By number, then timeline: the order recovery reads them.
                else { todo.append((1, String(s.number, radix: 16).leftPadded(16) + s.name, file.meta)) }
            default:
                if !uploaded { todo.append((2, file.meta.name, file.meta)) }
            }
        }
        todo.sort { ($0.rank, $0.order) < ($1.rank, $1.order) }
        return (todo.map(\.meta), lastSegment)
    }

    /// One run. Holds `.state/s3-wal.lock` (a second run at once throws `FileLock.Held`).
    public func uploadPending(metrics: MetricsRegistry? = nil) async throws -> Result {
        try FileSystem.createDirectory(backupDir + "/.state")
        let lock = try FileLock(path: backupDir + "/.state/s3-wal.lock", purpose: "S3 WAL upload")
        defer { lock.release() }
        let archive = WalArchive(backupDir: backupDir)
        let backupDir = self.backupDir
        let (files, newest, loaded) = await Blocking.run {
            let (files, newest) = Self.pending(archive: archive)
            return (files, newest, WalUploadState.load(backupDir: backupDir) ?? WalUploadState())
        }
        var state = loaded
        var result = Result(pending: files.count, lastSegment: newest)
        let client = S3Client(settings: settings)
        for meta in files {
            do {
                try await client.upload(file: archive.storedPath(meta), key: key(for: meta))
                try await client.upload(file: archive.metaPath(meta.name), key: metaKey(meta.name))
                let marker = WalUploadMarker(meta: meta, key: key(for: meta), uploadedAt: WallClock.now())
                try await Blocking.run { try marker.write(in: archive) }
                result.uploaded.append(meta.name)
                result.pending -= 1
                if WalSegment(name: meta.name, segmentSize: meta.walBytes > 0 ? meta.walBytes : WalSegment.defaultSize) != nil {
                    result.lastSegment = max(result.lastSegment, meta.archivedAtSeconds)
                }
            } catch {
                result.failed = meta.name
                result.error = settings.credentials.redact("\(error)")
                break
            }
        }
        let now = WallClock.now()
        if let error = result.error {
            state.consecutiveFailures += 1
            state.lastFailure = now
            state.lastError = error
        } else {
            state.consecutiveFailures = 0
            if !result.uploaded.isEmpty || state.lastSuccess == nil { state.lastSuccess = now }
            state.lastError = nil
        }
        state.lastSegment = result.lastSegment
        state.pending = result.pending
        let saved = state
        try await Blocking.run { try saved.save(backupDir: backupDir) }
        if let metrics { Self.publish(saved, in: metrics) }
        return result
    }

    /// The archive's S3 gauges from the state file.
    public static func publish(_ state: WalUploadState, in registry: MetricsRegistry) {
        registry.set(Family.walS3LastSegment, [:], state.lastSegment)
        registry.set(Family.walS3Pending, [:], Double(state.pending))
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}

import BackstopCore
import BackupCatalog
import Crypto
import Foundation
import HTTPClient

/// The yearly archive tier: a backup kept as the yearly keeper of a finished year is copied in
/// place into `BACKUP_S3_ARCHIVE_STORAGE_CLASS` (CopyObject onto its own key, metadata kept),
/// and an archived object is brought back with RestoreObject (`backstop s3 thaw`) before a
/// restore can read it.
///
/// Only finished years are archived: the current year's keeper changes with every new backup,
/// and GLACIER / DEEP_ARCHIVE charge 90 / 180 days minimum for each object moved there. The
/// `.meta` stays in its class, so listings and retention never need a thaw.
public struct RemoteArchive: Sendable {
    public let settings: S3Settings

    public init(settings: S3Settings) { self.settings = settings }

    /// Whether a kept backup must now be moved to the archive class (pure).
    public func shouldArchive(_ backup: RemoteBackup, decision: RetentionPolicy.Decision, now: Double) -> Bool {
        guard let target = settings.archiveStorageClass, decision.isYearly, backup.entry.isGood,
              backup.storageClass != target else { return false }
        return UTCCalendar.civil(UTCCalendar.day(backup.entry.startedAt)).year < UTCCalendar.civil(UTCCalendar.day(now)).year
    }

    /// CopyObject of `key` onto itself with the archive class (and the same server-side
    /// encryption); the user metadata is copied (`x-amz-metadata-directive: COPY`).
    public func archive(key: String) async throws {
        guard let target = settings.archiveStorageClass else { return }
        let client = S3Client(settings: settings)
        let source = "/" + settings.bucket + "/" + S3Settings.encode(key, keepSlash: true)
        var headers = [HTTPHeader("x-amz-copy-source", source), HTTPHeader("x-amz-metadata-directive", "COPY")]
        headers += client.objectHeaders.filter { $0.name.hasPrefix("x-amz-server-side-encryption") }
        headers.append(HTTPHeader("x-amz-storage-class", target))
        _ = try await client.send("CopyObject (to \(target))", key: key) {
            HTTPRequest(method: "PUT", url: settings.url(key: key), headers: headers + [S3Client.unsignedPayload], totalTimeout: .seconds(3600))
        }
    }

    /// The restore tiers S3 offers (DEEP_ARCHIVE has no Expedited).
    public enum Tier: String, Sendable, CaseIterable {
        case standard = "Standard", bulk = "Bulk", expedited = "Expedited"
    }

    /// Where an object stands for reading.
    public enum Readiness: Sendable, Equatable {
        case readable
        /// In an archive class, no restored copy.
        case archived(storageClass: String)
        /// A RestoreObject is running (hours for GLACIER Standard, up to 48 h for DEEP_ARCHIVE Bulk).
        case thawing(storageClass: String)
        /// A restored copy is readable until the date S3 gave (`expiry-date`).
        case thawed(storageClass: String, until: String)
        case missing
    }

    /// HEAD of the object: its storage class and `x-amz-restore` state.
    public func readiness(key: String) async throws -> Readiness {
        guard let head = try await S3Client(settings: settings).head(key: key) else { return .missing }
        let storageClass = head.header("x-amz-storage-class") ?? "STANDARD"
        guard S3Settings.archiveClasses.contains(storageClass) else { return .readable }
        guard let restore = head.header("x-amz-restore") else { return .archived(storageClass: storageClass) }
        if restore.contains("ongoing-request=\"true\"") { return .thawing(storageClass: storageClass) }
        let expiry = restore.range(of: "expiry-date=\"").map { r in String(restore[r.upperBound...].prefix { $0 != "\"" }) } ?? ""
        return .thawed(storageClass: storageClass, until: expiry)
    }

    /// What a restore says about an object it cannot read yet; nil when it is readable.
    public func refusal(key: String) async throws -> String? {
        let address = "s3://\(settings.bucket)/\(key)"
        switch try await readiness(key: key) {
        case .readable, .thawed, .missing: return nil
        case .archived(let storageClass):
            return "\(address) is in the \(storageClass) storage class (a yearly archive copy) and must be restored from the archive first: "
                + "run `backstop s3 thaw \(address) --days 7` (Standard tier: 3-5 hours for GLACIER, up to 12 hours for DEEP_ARCHIVE), then run this restore again"
        case .thawing(let storageClass):
            return "\(address) is being restored from \(storageClass) (a thaw is in progress; S3 makes it readable within hours): run this restore again once `backstop s3 thaw \(address)` says it is readable"
        }
    }

    /// What a thaw request did.
    public enum ThawResult: String, Sendable {
        /// S3 accepted the request (202).
        case started
        /// A restored copy already exists; its expiry was set to `days` from now (200).
        case alreadyThawed = "already_thawed"
        /// A request for it is still running (409 RestoreAlreadyInProgress).
        case inProgress = "in_progress"
        /// Not in an archive class: readable as it is.
        case notArchived = "not_archived"
    }

    /// RestoreObject for one key: a readable copy for `days` days, fetched at `tier`.
    public func thaw(key: String, days: Int, tier: Tier) async throws -> ThawResult {
        switch try await readiness(key: key) {
        case .readable: return .notArchived
        case .thawing: return .inProgress
        case .missing:
            throw S3Error(operation: "RestoreObject", address: "s3://\(settings.bucket)/\(key)", message: "no such object (check the key with backstop list --remote)")
        case .archived, .thawed: return try await request(key: key, days: days, tier: tier)
        }
    }

    private func request(key: String, days: Int, tier: Tier) async throws -> ThawResult {
        let xml = "<RestoreRequest xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Days>\(days)</Days>"
            + "<GlacierJobParameters><Tier>\(tier.rawValue)</Tier></GlacierJobParameters></RestoreRequest>"
        let body = Array(xml.utf8)
        let md5 = Data(Insecure.MD5.hash(data: body)).base64EncodedString()
        do {
            let response = try await S3Client(settings: settings).send("RestoreObject", key: key) {
                HTTPRequest(method: "POST", url: settings.url(key: key, query: "restore"),
                            headers: [HTTPHeader("Content-Type", "application/xml"), HTTPHeader("Content-MD5", md5), S3Client.unsignedPayload],
                            body: .bytes(body))
            }
            return response.status == 202 ? .started : .alreadyThawed
        } catch let error as S3Error where error.message.contains("RestoreAlreadyInProgress") {
            return .inProgress
        }
    }
}

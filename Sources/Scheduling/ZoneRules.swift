import BackstopCore
import Foundation

/// A time zone's offsets, as cron needs them: the UTC offset at an instant, and for a
/// wall-clock minute the instants that show it (none in a spring-forward gap, two in a
/// fall-back overlap).
///
/// Foundation's `TimeZone` (tzdata through ICU) answers the offset questions; everything
/// else is integer arithmetic. Zones with a fixed offset (UTC, `Etc/GMT+5`, …) skip
/// Foundation entirely, so the common case is pure arithmetic.
struct ZoneRules: Sendable {
    let timeZone: TimeZone
    /// Set when the zone never changes its offset.
    private let fixedOffset: Int?

    init(_ timeZone: TimeZone) {
        self.timeZone = timeZone
        let id = timeZone.identifier
        if id == "UTC" || id == "GMT" || id.hasPrefix("Etc/") || id.hasPrefix("GMT+") || id.hasPrefix("GMT-")
            || id.hasPrefix("UTC+") || id.hasPrefix("UTC-") || id == "Z" {
            fixedOffset = timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: 0))
        } else {
            fixedOffset = nil
        }
    }

    /// Seconds east of UTC at `instant` (Unix seconds).
    func offset(at instant: Int64) -> Int64 {
        if let fixedOffset { return Int64(fixedOffset) }
        return Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(instant))))
    }

    /// How the wall-clock minute `local` (seconds on the local epoch) maps to instants.
    enum Placement: Equatable {
        /// The usual case: one instant.
        case unique(Int64)
        /// Fall back: the wall clock shows this minute twice; `first` < `second`.
        case repeated(first: Int64, second: Int64)
        /// Spring forward: the wall clock never shows this minute; `gapEnd` is the first
        /// instant after the gap (the moment of the transition).
        case skipped(gapEnd: Int64)
    }

    func place(local: Int64) -> Placement {
        if let fixedOffset { return .unique(local - Int64(fixedOffset)) }
        // The offsets a day either side bracket the instant; real zones never change their
        // offset twice within two days.
        let early = offset(at: local - 86_400)
        let late = offset(at: local + 86_400)
        let u1 = local - early
        let ok1 = offset(at: u1) == early
        if early == late {
            if ok1 { return .unique(u1) }
            // Two transitions close together (not seen in tzdata since 1970); fall back to
            // the offset at the naive instant.
            return .unique(local - offset(at: u1))
        }
        let u2 = local - late
        let ok2 = offset(at: u2) == late
        switch (ok1, ok2) {
        case (true, true):
            return u1 == u2 ? .unique(u1) : .repeated(first: min(u1, u2), second: max(u1, u2))
        case (true, false): return .unique(u1)
        case (false, true): return .unique(u2)
        case (false, false):
            // In the gap: local - late < transition <= local - early. Find the transition.
            var lo = min(u1, u2)   // offset here is still `early`
            var hi = max(u1, u2)   // offset here is already `late`
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2
                if offset(at: mid) == early { lo = mid } else { hi = mid }
            }
            return .skipped(gapEnd: hi)
        }
    }

    /// RFC 3339 with the zone's offset at that instant: `2026-03-29T03:00:00+02:00`; UTC
    /// itself prints `Z`.
    func rfc3339(_ instant: Int64) -> String {
        let off = offset(at: instant)
        let c = CivilTime(localSeconds: instant + off)
        let second = Int((instant + off) - c.localSeconds)
        func p(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        var year = String(c.year)
        while year.count < 4 { year = "0" + year }
        let base = "\(year)-\(p(c.month))-\(p(c.day))T\(p(c.hour)):\(p(c.minute)):\(p(second))"
        if off == 0 && fixedOffset == 0 { return base + "Z" }
        let sign = off < 0 ? "-" : "+"
        let a = Int(abs(off))
        return base + "\(sign)\(p(a / 3600)):\(p((a % 3600) / 60))"
    }
}

/// The time zone schedules run in.
public enum ScheduleTimeZone {
    /// The zone named by `TZ`: UTC when unset or empty; a leading `:` (glibc's form) is
    /// ignored. An unknown name is an error naming TZ, never a silent fall-back to UTC,
    /// because a backup at the wrong hour is found out only when it is needed.
    public static func fromEnvironment(_ env: [String: String], variable: String = "TZ") throws -> TimeZone {
        try named(env[variable] ?? "", variable: variable)
    }

    /// Resolves a zone name as `fromEnvironment` does.
    public static func named(_ raw: String, variable: String = "TZ") throws -> TimeZone {
        var name = raw.trimmingSpaces()
        if name.hasPrefix(":") { name.removeFirst() }
        if name.isEmpty || name == "UTC" || name == "Etc/UTC" || name == "Z" {
            // A fixed-offset zone: needs no tz database, so the default case never loads ICU
            // (worth about 2 MB of resident memory in `serve`).
            return TimeZone(secondsFromGMT: 0)!
        }
        guard let zone = TimeZone(identifier: name) else {
            throw ConfigError(
                variable: variable, value: raw,
                accepted: "an IANA time zone name such as UTC, Europe/Berlin or America/New_York (see /usr/share/zoneinfo), or empty for UTC")
        }
        return zone
    }

    /// The zone's name for people: `UTC` for UTC (Foundation on Linux calls it `GMT`).
    public static func name(of zone: TimeZone) -> String {
        let id = zone.identifier
        if id == "GMT" || id == "UTC" || id == "Etc/UTC" || id == "Etc/GMT" { return "UTC" }
        return id
    }

    /// RFC 3339 with the offset `zone` has at `date`.
    public static func rfc3339(_ date: Date, in zone: TimeZone) -> String {
        ZoneRules(zone).rfc3339(Int64(date.timeIntervalSince1970.rounded(.down)))
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#else
import Darwin
#endif

/// Wall-clock time as Unix seconds and the two text forms Backstop writes: RFC 3339 (UTC)
/// in `.meta` and JSON, and the scripts' `YYYYMMDD_HHMMSS` stamp (UTC) in file names.
public enum WallClock {
    /// Unix seconds of a civil UTC time (`timegm`; fields as written, month 1–12).
    static func utcSeconds(year: Int32, month: Int32, day: Int32, hour: Int32, minute: Int32, second: Int32) -> Double {
        var parts = tm()
        parts.tm_year = year - 1900
        parts.tm_mon = month - 1
        parts.tm_mday = day
        parts.tm_hour = hour
        parts.tm_min = minute
        parts.tm_sec = second
        return Double(timegm(&parts))
    }

    /// Seconds since the Unix epoch, with sub-second precision.
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// `2026-01-07T02:00:00Z` (or with milliseconds when `fractional`).
    public static func rfc3339(_ seconds: Double, fractional: Bool = false) -> String {
        let whole = floor(seconds)
        var t = time_t(whole)
        var parts = tm()
        gmtime_r(&t, &parts)
        var text = "\(pad(Int(parts.tm_year) + 1900, 4))-\(pad(Int(parts.tm_mon) + 1, 2))-\(pad(Int(parts.tm_mday), 2))"
            + "T\(pad(Int(parts.tm_hour), 2)):\(pad(Int(parts.tm_min), 2)):\(pad(Int(parts.tm_sec), 2))"
        if fractional {
            text += "." + pad(Int(((seconds - whole) * 1000).rounded(.down)), 3)
        }
        return text + "Z"
    }

    /// `20260107_020000`, the stamp in backup file names.
    public static func fileStamp(_ seconds: Double) -> String {
        var t = time_t(floor(seconds))
        var parts = tm()
        gmtime_r(&t, &parts)
        return "\(pad(Int(parts.tm_year) + 1900, 4))\(pad(Int(parts.tm_mon) + 1, 2))\(pad(Int(parts.tm_mday), 2))"
            + "_\(pad(Int(parts.tm_hour), 2))\(pad(Int(parts.tm_min), 2))\(pad(Int(parts.tm_sec), 2))"
    }

    /// `20260107`, the stamp in inventory file names.
    public static func dayStamp(_ seconds: Double) -> String {
        String(fileStamp(seconds).prefix(8))
    }

    /// Parses a `YYYYMMDD_HHMMSS` stamp (UTC) back to Unix seconds.
    public static func parseFileStamp(_ text: some StringProtocol) -> Double? {
        let chars = Array(text.utf8)
        guard chars.count == 15, chars[8] == UInt8(ascii: "_") else { return nil }
        func num(_ range: Range<Int>) -> Int32? {
            var v: Int32 = 0
            for i in range {
                let c = chars[i]
                guard c >= 48, c <= 57 else { return nil }
                v = v * 10 + Int32(c - 48)
            }
            return v
        }
        guard let y = num(0..<4), let mo = num(4..<6), let d = num(6..<8),
              let h = num(9..<11), let mi = num(11..<13), let s = num(13..<15),
              (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, s < 61 else { return nil }
        return utcSeconds(year: y, month: mo, day: d, hour: h, minute: mi, second: s)
    }

    /// Parses RFC 3339 (`2026-01-07T02:00:00Z`, `…+01:00`, optional fraction) to Unix seconds.
    public static func parseRFC3339(_ text: String) -> Double? {
        let c = Array(text.utf8)
        guard c.count >= 20 else { return nil }
        func num(_ from: Int, _ len: Int) -> Int32? {
            guard from + len <= c.count else { return nil }
            var v: Int32 = 0
            for i in from..<(from + len) {
                guard c[i] >= 48, c[i] <= 57 else { return nil }
                v = v * 10 + Int32(c[i] - 48)
            }
            return v
        }
        guard let y = num(0, 4), c[4] == 45, let mo = num(5, 2), c[7] == 45, let d = num(8, 2),
              c[10] == 84 || c[10] == 116 || c[10] == 32, let h = num(11, 2), c[13] == 58, let mi = num(14, 2),
              c[16] == 58, let s = num(17, 2) else { return nil }
        var i = 19
        var fraction = 0.0
        if i < c.count, c[i] == 46 {
            i += 1
            var scale = 0.1
            while i < c.count, c[i] >= 48, c[i] <= 57 {
                fraction += Double(c[i] - 48) * scale
                scale /= 10
                i += 1
            }
        }
        var offset: Int32 = 0
        guard i < c.count else { return nil }
        if c[i] == 90 || c[i] == 122 {
            i += 1
        } else if c[i] == 43 || c[i] == 45, let oh = num(i + 1, 2), c.count > i + 3, c[i + 3] == 58, let om = num(i + 4, 2) {
            offset = (oh * 3600 + om * 60) * (c[i] == 45 ? -1 : 1)
            i += 6
        } else {
            return nil
        }
        guard i == c.count else { return nil }
        return utcSeconds(year: y, month: mo, day: d, hour: h, minute: mi, second: s) - Double(offset) + fraction
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let s = String(value)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
}

/// Monotonic seconds, for durations that must not jump with the wall clock.
public enum MonotonicClock {
    public static func seconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

extension Duration {
    /// The duration as fractional seconds.
    public var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#else
import Darwin
#endif
import BackstopCore
import Synchronization

/// The `process_*` families every exporter carries, read from `/proc/self` when a scrape
/// renders (a handful of small reads; nothing that can block on another process). One reading
/// serves every scrape within a second: under a burst of scrapes the /proc reads, not the
/// rendering, were the cost, and no scraper looks finer than that.
public enum ProcessMetrics {
    /// One reading of the process figures.
    struct Reading: Sendable {
        var cpuSeconds: Double?
        var residentBytes: Double?
        var virtualBytes: Double?
        var openFDs: Double?
    }

    /// The last reading and when it was taken; refreshed when older than `maxAge` seconds.
    final class Sampler: Sendable {
        private let last = Mutex<(at: Double, reading: Reading)?>(nil)
        let maxAge: Double
        let read: @Sendable () -> Reading

        init(maxAge: Double, read: @escaping @Sendable () -> Reading) {
            self.maxAge = maxAge
            self.read = read
        }

        func reading(at now: Double) -> Reading {
            if let cached = last.withLock({ $0 }), now >= cached.at, now - cached.at < maxAge { return cached.reading }
            let fresh = read()
            last.withLock { $0 = (now, fresh) }
            return fresh
        }
    }

    public static func register(in registry: MetricsRegistry) {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        let startTime = processStartTime(ticksPerSecond: ticks)
        let sampler = Sampler(maxAge: 1) {
            var reading = Reading()
            if let fields = statFields() {
                reading.cpuSeconds = ((Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)) / ticks
                reading.virtualBytes = Double(fields[20])
            }
            if let statm = readSmall("/proc/self/statm") {
                let parts = statm.split(separator: " ")
                if parts.count > 1, let pages = Double(parts[1]) { reading.residentBytes = pages * pageSize }
            }
            if let names = try? FileSystem.list("/proc/self/fd") {
                reading.openFDs = Double(max(0, names.count - 1)) // minus the descriptor opendir itself holds
            }
            return reading
        }
        @Sendable func one(_ value: Double?) -> [(labels: Labels, value: Double)] { value.map { [([:], $0)] } ?? [] }
        registry.declareComputed("process_cpu_seconds_total", .counter, help: "Total user and system CPU time spent in seconds.") { now in
            one(sampler.reading(at: now).cpuSeconds)
        }
        registry.declareComputed("process_resident_memory_bytes", .gauge, help: "Resident memory size in bytes.") { now in
            one(sampler.reading(at: now).residentBytes)
        }
        registry.declareComputed("process_virtual_memory_bytes", .gauge, help: "Virtual memory size in bytes.") { now in
            one(sampler.reading(at: now).virtualBytes)
        }
        registry.declareComputed("process_start_time_seconds", .gauge, help: "Start time of the process since unix epoch in seconds.") { _ in
            [([:], startTime)]
        }
        registry.declareComputed("process_open_fds", .gauge, help: "Number of open file descriptors.") { now in
            one(sampler.reading(at: now).openFDs)
        }
        registry.declareComputed("process_max_fds", .gauge, help: "Maximum number of open file descriptors.") { _ in
            var limit = rlimit()
            guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return [] }
            return [([:], Double(limit.rlim_cur))]
        }
    }

    /// Fields of /proc/self/stat after the command name (field 3 onwards, zero-based from "state").
    private static func statFields() -> [Substring]? {
        guard let stat = readSmall("/proc/self/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        let rest = stat[stat.index(after: close)...].split(separator: " ")
        return rest.count > 20 ? rest : nil
    }

    private static func processStartTime(ticksPerSecond: Double) -> Double {
        guard let fields = statFields(), let startTicks = Double(fields[19]),
              let stat = readSmall("/proc/stat") else { return WallClock.now() }
        for line in stat.split(separator: "\n") where line.hasPrefix("btime ") {
            if let boot = Double(line.dropFirst(6).trimmingSpacesSub()) {
                return boot + startTicks / ticksPerSecond
            }
        }
        return WallClock.now()
    }

    private static func readSmall(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        var out: [UInt8] = []
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out.append(contentsOf: buffer[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension Substring {
    fileprivate func trimmingSpacesSub() -> String { String(self).trimmingSpaces() }
}

import CMemoryRelease

/// Keeps the long-running service's resident set near what it actually uses.
///
/// - glibc gives every thread that contends on malloc its own arena (up to 8 per core), each
///   keeping freed memory; `limitArenas` caps them (MALLOC_ARENA_MAX, if set, wins).
/// - `release` returns free heap to the kernel (malloc_trim) and unmaps the pages of code and
///   read-only data that are still mapped only because start-up or a job once ran them
///   (argument parsing, configuration, Foundation and ICU, the backup pipeline): clean,
///   never-written pages of private file mappings, identical to the file. A later access maps
///   them again from the page cache, so nothing is lost but a minor fault.
public enum MemoryRelease {
    /// Call once, early (before the worker threads allocate). Returns the cap set, 0 if the
    /// environment already chose one or the C library is not glibc.
    @discardableResult
    public static func limitArenas(_ count: Int = 2) -> Int {
        Int(backstop_limit_malloc_arenas(Int32(count)))
    }

    /// Trims the heap and drops clean file-backed pages; returns the kilobytes of mapped
    /// file pages dropped (-1 when /proc/self/smaps cannot be read).
    @discardableResult
    public static func release() -> Int {
        backstop_trim_malloc()
        return backstop_release_clean_file_pages()
    }
}

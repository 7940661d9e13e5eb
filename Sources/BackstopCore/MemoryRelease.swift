import CMemoryRelease

/// Keeps the long-running service's resident set near what it actually uses.
///
/// - glibc gives every thread that contends on malloc its own arena (up to 8 per core), each
///   keeping freed memory; `limitArenas` caps them (MALLOC_ARENA_MAX, if set, wins).
/// - `release` returns free heap to the kernel (malloc_trim) and hands the pages of code and
///   data that are still mapped only because start-up or a job once ran them (argument
///   parsing, configuration, Foundation and ICU, the backup pipeline) to the kernel's reclaim
///   (`MADV_PAGEOUT`), only those still identical to their file. Reclaim never loses a byte:
///   written pages stay, and a range reused by other memory meanwhile is only reclaimed, never
///   zeroed (which is why `MADV_DONTNEED` is not used). A later access reads them back.
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

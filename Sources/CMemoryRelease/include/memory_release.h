#ifndef BACKSTOP_MEMORY_RELEASE_H
#define BACKSTOP_MEMORY_RELEASE_H

/* Caps glibc's malloc arenas at `count` unless the operator chose (MALLOC_ARENA_MAX or a
   glibc.malloc.arena_max tunable). Returns the cap set, 0 when left alone or not glibc. */
int backstop_limit_malloc_arenas(int count);

/* For a short command that builds and frees large structures once (list and cleanup of a big
   catalog): the heap grows in steps of `pad_bytes`, keeps what is freed (no trim below
   `keep_bytes`) and serves blocks up to `mmap_bytes` from the heap, so freed memory is reused
   instead of returned and faulted in again. Left alone when GLIBC_TUNABLES names a malloc
   setting. Returns 1 when set, 0 when left alone or not glibc. */
int backstop_malloc_for_batch(long pad_bytes, long keep_bytes, long mmap_bytes);

/* Gives free heap pages back to the kernel (malloc_trim(0)); no-op without glibc. */
void backstop_trim_malloc(void);

/* Drops from the resident set the pages of private file mappings (program and library code,
   read-only data, and the never-written pages of data segments) that are still identical to
   the file: the pages pagemap shows present and still file-backed are handed to the
   kernel's reclaim (MADV_PAGEOUT). Written pages are never touched, and nothing is ever
   zeroed (no MADV_DONTNEED: a range reused between the smaps read and the madvise call would
   lose its data). Returns the kilobytes asked to reclaim, -1 when /proc/self/smaps is
   unreadable. */
long backstop_release_clean_file_pages(void);

#endif

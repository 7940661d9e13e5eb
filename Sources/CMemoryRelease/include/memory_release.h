#ifndef BACKSTOP_MEMORY_RELEASE_H
#define BACKSTOP_MEMORY_RELEASE_H

/* Caps glibc's malloc arenas at `count` unless the operator chose (MALLOC_ARENA_MAX or a
   glibc.malloc.arena_max tunable). Returns the cap set, 0 when left alone or not glibc. */
int backstop_limit_malloc_arenas(int count);

/* Gives free heap pages back to the kernel (malloc_trim(0)); no-op without glibc. */
void backstop_trim_malloc(void);

/* Drops from the resident set the pages of private file mappings (program and library code,
   read-only data, and the never-written pages of data segments) that are still identical to
   the file: read-only mappings never written (smaps "Anonymous: 0 kB") are unmapped
   (MADV_DONTNEED; the page cache keeps them, the next access is a minor fault); in the others
   only the pages still backed by the file (pagemap) are handed to the kernel's reclaim
   (MADV_PAGEOUT). Written pages are never touched. Returns the kilobytes dropped (or asked to
   reclaim), -1 when /proc/self/smaps is unreadable. */
long backstop_release_clean_file_pages(void);

#endif

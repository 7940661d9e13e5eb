#ifndef BACKSTOP_MEMORY_RELEASE_H
#define BACKSTOP_MEMORY_RELEASE_H

/* Caps glibc's malloc arenas at `count` unless the operator chose (MALLOC_ARENA_MAX or a
   glibc.malloc.arena_max tunable). Returns the cap set, 0 when left alone or not glibc. */
int backstop_limit_malloc_arenas(int count);

/* Gives free heap pages back to the kernel (malloc_trim(0)); no-op without glibc. */
void backstop_trim_malloc(void);

/* Drops from the resident set the pages of private, non-writable, file-backed mappings that
   were never written (smaps "Anonymous: 0 kB"): program and library code and read-only data.
   They are identical to the file, so the next access maps them again from the page cache
   (a minor fault). Returns the kilobytes dropped, -1 when /proc/self/smaps is unreadable. */
long backstop_release_clean_file_pages(void);

#endif

#ifndef BACKSTOP_PASSWORD_HASH_H
#define BACKSTOP_PASSWORD_HASH_H
#include <stddef.h>

/* 1 when `password` hashes to `hash` under libcrypt (crypt_rn: bcrypt $2b$/$2y$/$2a$ and the
   other methods libxcrypt knows), 0 when it does not or the hash is not one libcrypt reads.
   The comparison of the computed and the stored hash takes the same time wherever they
   differ. Thread-safe (crypt_rn with a per-call buffer). */
int backstop_password_matches(const char *password, const char *hash);

/* 1 when libcrypt recognises `hash` as a bcrypt hash it can verify ($2b$, $2y$, $2a$). */
int backstop_password_hash_is_bcrypt(const char *hash);

/* Compares `length` bytes in time that does not depend on where they differ. */
int backstop_constant_time_equal(const void *a, const void *b, size_t length);
#endif

#include "password_hash.h"
#include <crypt.h>
#include <stdlib.h>
#include <string.h>

int backstop_constant_time_equal(const void *a, const void *b, size_t length) {
    const volatile unsigned char *x = a;
    const volatile unsigned char *y = b;
    unsigned char difference = 0;
    for (size_t i = 0; i < length; i++) difference |= (unsigned char)(x[i] ^ y[i]);
    return difference == 0;
}

int backstop_password_matches(const char *password, const char *hash) {
    if (password == NULL || hash == NULL) return 0;
    /* struct crypt_data is ~32 KiB: on the heap, not on a libmicrohttpd thread's stack. */
    struct crypt_data *data = calloc(1, sizeof(struct crypt_data));
    if (data == NULL) return 0;
    const char *computed = crypt_rn(password, hash, data, (int)sizeof(struct crypt_data));
    int result = 0;
    if (computed != NULL && computed[0] != '*') {
        size_t computedLength = strlen(computed);
        size_t hashLength = strlen(hash);
        /* Always compare: the length check alone would end early. */
        size_t length = computedLength < hashLength ? computedLength : hashLength;
        int equal = backstop_constant_time_equal(computed, hash, length);
        result = equal && computedLength == hashLength;
    }
    explicit_bzero(data, sizeof(struct crypt_data));
    free(data);
    return result;
}

int backstop_password_hash_is_bcrypt(const char *hash) {
    if (hash == NULL) return 0;
    if (strncmp(hash, "$2b$", 4) != 0 && strncmp(hash, "$2y$", 4) != 0 && strncmp(hash, "$2a$", 4) != 0) return 0;
    /* $2b$NN$ + 53 characters of salt and hash. */
    if (strlen(hash) != 60) return 0;
    return crypt_checksalt(hash) == CRYPT_SALT_OK;
}

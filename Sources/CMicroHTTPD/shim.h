#ifndef BACKSTOP_CMICROHTTPD_SHIM_H
#define BACKSTOP_CMICROHTTPD_SHIM_H
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <stdint.h>
#include <stdarg.h>
#include <microhttpd.h>

/* URL unescaping for libmicrohttpd (MHD_OPTION_UNESCAPE_CALLBACK): %XX decoded as MHD does,
   except %00, which stays as the three characters: decoded, the NUL would end the C string
   the access handler reads, and `/metrics%00.txt` would be answered as `/metrics`. Pure C on
   libmicrohttpd's threads, in place (the result is never longer). */
static inline int backstop_mhd_hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static inline size_t backstop_mhd_unescape(void *cls, struct MHD_Connection *connection, char *text) {
    (void)cls;
    (void)connection;
    char *read = text, *write = text;
    while (*read) {
        if (read[0] == '%' && read[1] && read[2]) {
            int high = backstop_mhd_hex(read[1]), low = backstop_mhd_hex(read[2]);
            if (high >= 0 && low >= 0 && (high | low) != 0) {
                *write++ = (char)(high * 16 + low);
                read += 3;
                continue;
            }
        }
        *write++ = *read++;
    }
    *write = 0;
    return (size_t)(write - text);
}

/* MHD_start_daemon is variadic: this wrapper fixes the option list Backstop uses: listen
   address, internal thread pool, the limits that keep hostile clients bounded (connections in
   all and per IP, idle timeout, memory per connection), strict HTTP parsing (a request
   without Host, or with bare LF line ends, is refused 400 rather than guessed at) and, when `tlsKey` is not NULL, TLS
   through GnuTLS (key and certificate as PEM text, GnuTLS priority string). */
static inline struct MHD_Daemon *backstop_mhd_start(unsigned int flags,
                                                    const struct sockaddr *address,
                                                    MHD_AccessHandlerCallback handler,
                                                    void *context,
                                                    unsigned int threadPoolSize,
                                                    unsigned int connectionTimeoutSeconds,
                                                    unsigned int connectionLimit,
                                                    unsigned int perIPConnectionLimit,
                                                    size_t memoryLimitPerConnection,
                                                    const char *tlsKey,
                                                    const char *tlsCertificate,
                                                    const char *tlsPriorities) {
    /* The TLS options go through MHD_OPTION_ARRAY: empty without TLS, so one call serves both. */
    struct MHD_OptionItem tls[4] = {
        { MHD_OPTION_END, 0, NULL }, { MHD_OPTION_END, 0, NULL },
        { MHD_OPTION_END, 0, NULL }, { MHD_OPTION_END, 0, NULL },
    };
    if (tlsKey != NULL && tlsCertificate != NULL) {
        flags |= MHD_USE_TLS;
        tls[0] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)tlsKey };
        tls[1] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)tlsCertificate };
        tls[2] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)tlsPriorities };
    }
    return MHD_start_daemon(flags, 0, NULL, NULL, handler, context,
                            MHD_OPTION_SOCK_ADDR, address,
                            MHD_OPTION_THREAD_POOL_SIZE, threadPoolSize,
                            MHD_OPTION_CONNECTION_TIMEOUT, connectionTimeoutSeconds,
                            MHD_OPTION_CONNECTION_LIMIT, connectionLimit,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, perIPConnectionLimit,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, memoryLimitPerConnection,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1,
                            MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
                            MHD_OPTION_UNESCAPE_CALLBACK, backstop_mhd_unescape, (void *)NULL,
                            MHD_OPTION_ARRAY, tls,
                            MHD_OPTION_END);
}

/* 1 when this libmicrohttpd was built with TLS (Debian's is, with GnuTLS). */
static inline int backstop_mhd_has_tls(void) {
    return MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES;
}

/* The request's Authorization header, or NULL. */
static inline const char *backstop_mhd_authorization(struct MHD_Connection *connection) {
    return MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
}

/* The port the daemon actually bound (for port 0 = "pick a free one"). */
static inline uint16_t backstop_mhd_bound_port(struct MHD_Daemon *daemon) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

/* Queues a response whose bytes libmicrohttpd copies (MHD_RESPMEM_MUST_COPY), so the
   caller's buffer may die as soon as this returns. */
static inline enum MHD_Result backstop_mhd_respond(struct MHD_Connection *connection, unsigned int status,
                                                   const void *body, size_t length,
                                                   const char *contentType,
                                                   const char *extraHeaderName, const char *extraHeaderValue) {
    struct MHD_Response *response = MHD_create_response_from_buffer(length, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (response == NULL) return MHD_NO;
    MHD_add_response_header(response, "Content-Type", contentType);
    if (extraHeaderName != NULL && extraHeaderValue != NULL)
        MHD_add_response_header(response, extraHeaderName, extraHeaderValue);
    enum MHD_Result result = MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return result;
}

static inline enum MHD_Result backstop_mhd_no(void) { return MHD_NO; }
static inline enum MHD_Result backstop_mhd_yes(void) { return MHD_YES; }
#endif

/* interfaces/tls_client/im_tls_client.h: the client side of TLS for
 * imcore-cli and imcore-bench (--tls, --ca, --servername, --insecure).
 *
 * A context speaks TLS 1.2 or 1.3 and checks the server's certificate:
 * against the system's store, or one CA file the user pins; and the name
 * or address it must be for. --insecure turns the checks off, and the
 * programs say so on stderr. */
#ifndef IM_TLS_CLIENT_H
#define IM_TLS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

/* A client context, or NULL with why (the caller's buffer) filled.
 * ca_file NULL: the system's trusted CAs. The caller frees it with
 * SSL_CTX_free. */
SSL_CTX *im_tls_client_ctx(const char *ca_file, bool insecure, char *why, size_t size);

/* Prepares ssl (the caller's) to connect to host (what was dialled: an IP
 * literal) as servername (NULL: host): SNI when it is a name, and the name
 * or address the certificate must carry. Returns false if it cannot. */
bool im_tls_client_prepare(SSL *ssl, const char *host, const char *servername);

/* Why a handshake on ssl failed, in words: the certificate check's verdict
 * if that was it, else OpenSSL's last reason, else fallback. */
const char *im_tls_client_why(SSL *ssl, unsigned long ssl_error, const char *fallback,
                              char *buf, size_t size);

/* The line --insecure prints on stderr. */
#define IM_TLS_INSECURE_WARNING                                                          \
    "warning: --insecure: the server's certificate is not checked; anyone on the path " \
    "can read and change this connection"

#endif

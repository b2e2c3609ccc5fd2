/* interfaces/tls_client/im_tls_client.c: see im_tls_client.h. */
#include "im_tls_client.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

SSL_CTX *im_tls_client_ctx(const char *ca_file, bool insecure, char *why, size_t size)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(why, size, "cannot make a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    /* Sessions kept by the caller (SSL_get1_session) resume on reconnect. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    if (insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return ctx;
    }
    int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        unsigned long e = ERR_peek_last_error();
        const char *r = e ? ERR_reason_error_string(e) : NULL;
        snprintf(why, size, "cannot load the CAs %s%s%s: %s", ca_file ? "from '" : "of the system",
                 ca_file ? ca_file : "", ca_file ? "'" : "", r ? r : "no certificates");
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

bool im_tls_client_prepare(SSL *ssl, const char *host, const char *servername)
{
    const char *name = servername && servername[0] ? servername : host;
    unsigned char addr[16];
    bool is_ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
    if (is_ip) {
        /* No SNI for an address (RFC 6066); the certificate must list it. */
        X509_VERIFY_PARAM *p = SSL_get0_param(ssl);
        return X509_VERIFY_PARAM_set1_ip_asc(p, name) == 1;
    }
    return SSL_set_tlsext_host_name(ssl, name) == 1 && SSL_set1_host(ssl, name) == 1;
}

const char *im_tls_client_why(SSL *ssl, unsigned long ssl_error, const char *fallback,
                              char *buf, size_t size)
{
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (v != X509_V_OK) {
        snprintf(buf, size, "the server's certificate is not trusted: %s",
                 X509_verify_cert_error_string(v));
    } else if (ssl_error != 0) {
        const char *r = ERR_reason_error_string(ssl_error);
        snprintf(buf, size, "TLS: %s", r ? r : fallback);
    } else {
        snprintf(buf, size, "%s", fallback);
    }
    return buf;
}

/* infrastructure/net_libevent/im_net_tls.c: the TLS carrier, OpenSSL 3 on
 * the server's own non-blocking sockets.
 *
 * A TLS connection is an ordinary connection of im_net_conn.c whose reads
 * and writes go through SSL_read and SSL_write on the same socket instead
 * of read(2) and writev(2): the same input and output buffers, the same
 * frames, the same limits. The handshake happens inside the first reads
 * (the SSL is in accept state), so it needs no state of its own; one that
 * stalls is closed by the sweep with everything else that has not logged
 * in within session.login_timeout_s.
 *
 * TLS 1.2 and 1.3 only, no renegotiation, no compression. Resumption by
 * stateless tickets (one per handshake, its key the context's own: a
 * reload starts a new key, so tickets issued before it make full
 * handshakes). No server-side session cache: nothing grows with clients.
 *
 * Threads: contexts are made and swapped on the acceptor's thread (start,
 * SIGHUP), and SSLs are made there too, so t->ctx needs no lock; each SSL
 * holds a reference to its context, so the old one lives as long as the
 * connections made from it. An SSL is then used only by its worker.
 * OpenSSL's error queue is per thread, and SSL_get_error reads it: every
 * path that leaves an error there clears it, so the queue is empty before
 * each SSL_read and SSL_write without clearing it on every call (that cost
 * 3% of the instructions of a TLS message). */
#include "im_net_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "im_log.h"

struct im_tls_server {
    SSL_CTX *ctx;               /* for new connections; swapped by reload */
    char cert[256], key[256], client_ca[256];
    char cert_where[300], key_where[300], ca_where[300]; /* "FILE:LINE: " or "" */
};

/* The most recent OpenSSL reason, or what. */
static const char *ssl_reason(char *buf, size_t size, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    if (e == 0) {
        snprintf(buf, size, "%s", what);
    } else {
        const char *r = ERR_reason_error_string(e);
        snprintf(buf, size, "%s", r ? r : what);
    }
    ERR_clear_error();
    return buf;
}

static void where_prefix(char *out, size_t size, const char *where)
{
    snprintf(out, size, "%s%s", where && where[0] ? where : "", where && where[0] ? ": " : "");
}

/* Whether path can be opened for reading; if not, why in buf. */
static bool readable(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(buf, size, "%s", strerror(errno));
        return false;
    }
    fclose(f);
    return true;
}

/* A context from t's files, or NULL with err set. */
static SSL_CTX *make_ctx(const im_tls_server *t, im_error *err)
{
    char why[160];
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        im_error_set(err, IM_ENOMEM, "cannot make a TLS context: %s",
                     ssl_reason(why, sizeof why, "out of memory"));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Partial writes: SSL_write takes what the socket takes, like
     * writev. Moving buffer: a write retried after WANT_WRITE may come
     * from the output buffer after it grew. Release buffers: an idle
     * connection keeps no 16 KiB record buffers. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* Read ahead: one read(2) takes every record the socket holds, not
     * a header and a body per record (im_net_conn.c wakes the connection
     * again when records wait in the SSL). */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 1);
    static const unsigned char sid_ctx[] = "imcore";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);

    if (!readable(t->cert, why, sizeof why)) {
        im_error_set(err, IM_EINVAL, "%scert: cannot open the certificate chain '%s': %s",
                     t->cert_where, t->cert, why);
        goto fail;
    }
    if (!readable(t->key, why, sizeof why)) {
        im_error_set(err, IM_EINVAL, "%skey: cannot open the private key '%s': %s",
                     t->key_where, t->key, why);
        goto fail;
    }
    if (t->client_ca[0] && !readable(t->client_ca, why, sizeof why)) {
        im_error_set(err, IM_EINVAL, "%sclient_ca: cannot open '%s': %s", t->ca_where,
                     t->client_ca, why);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, t->cert) != 1) {
        im_error_set(err, IM_EINVAL, "%scert: cannot load the certificate chain '%s': %s",
                     t->cert_where, t->cert, ssl_reason(why, sizeof why, "unreadable"));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, t->key, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH) {
            ERR_clear_error();
            im_error_set(err, IM_EINVAL, "%skey: '%s' does not match the certificate '%s'",
                         t->key_where, t->key, t->cert);
            goto fail;
        }
        im_error_set(err, IM_EINVAL, "%skey: cannot load the private key '%s': %s",
                     t->key_where, t->key, ssl_reason(why, sizeof why, "unreadable"));
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        im_error_set(err, IM_EINVAL, "%skey: '%s' does not match the certificate '%s': %s",
                     t->key_where, t->key, t->cert, ssl_reason(why, sizeof why, "mismatch"));
        goto fail;
    }
    if (t->client_ca[0]) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(t->client_ca);
        if (!names || SSL_CTX_load_verify_locations(ctx, t->client_ca, NULL) != 1) {
            if (names)
                sk_X509_NAME_pop_free(names, X509_NAME_free);
            im_error_set(err, IM_EINVAL, "%sclient_ca: cannot load '%s': %s", t->ca_where,
                         t->client_ca, ssl_reason(why, sizeof why, "no certificates in it"));
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names); /* takes names */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int im__tls_server_new(const im_net_listener_config *lc, im_tls_server **out, im_error *err)
{
    *out = NULL;
    im_tls_server *t = calloc(1, sizeof *t);
    if (!t)
        return im_error_set(err, IM_ENOMEM, "out of memory");
    snprintf(t->cert, sizeof t->cert, "%s", lc->cert ? lc->cert : "");
    snprintf(t->key, sizeof t->key, "%s", lc->key ? lc->key : "");
    snprintf(t->client_ca, sizeof t->client_ca, "%s", lc->client_ca ? lc->client_ca : "");
    where_prefix(t->cert_where, sizeof t->cert_where, lc->cert_where ? lc->cert_where : lc->where);
    where_prefix(t->key_where, sizeof t->key_where, lc->key_where ? lc->key_where : lc->where);
    where_prefix(t->ca_where, sizeof t->ca_where,
                 lc->client_ca_where ? lc->client_ca_where : lc->where);
    if (!t->cert[0] || !t->key[0]) {
        int rc = im_error_set(err, IM_EINVAL, "%sa tls listener needs cert and key",
                              t->cert_where);
        free(t);
        return rc;
    }
    t->ctx = make_ctx(t, err);
    if (!t->ctx) {
        free(t);
        return err ? err->code : IM_EINVAL;
    }
    *out = t;
    return IM_OK;
}

int im__tls_server_reload(im_tls_server *t, im_error *err)
{
    SSL_CTX *ctx = make_ctx(t, err);
    if (!ctx)
        return err ? err->code : IM_EINVAL;
    SSL_CTX_free(t->ctx); /* connections made from it keep their reference */
    t->ctx = ctx;
    return IM_OK;
}

void im__tls_server_free(im_tls_server *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

SSL *im__tls_accept(im_tls_server *t, int fd)
{
    ERR_clear_error();
    SSL *ssl = SSL_new(t->ctx);
    if (!ssl)
        return NULL;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

void im__tls_free(SSL *ssl, bool polite)
{
    if (!ssl)
        return;
    ERR_clear_error();
    /* One try at a close_notify, never waited for: the socket is closing. */
    if (polite && SSL_is_init_finished(ssl))
        (void)SSL_shutdown(ssl);
    SSL_free(ssl);
    ERR_clear_error();
}

bool im__tls_has_pending(SSL *ssl)
{
    return SSL_has_pending(ssl) == 1;
}

bool im__tls_established(SSL *ssl)
{
    return SSL_is_init_finished(ssl);
}

ssize_t im__tls_read(im_conn *c, void *buf, size_t len)
{
    bool handshaking = !SSL_is_init_finished(c->ssl);
    int n = SSL_read(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n > 0)
        return n;
    int e = SSL_get_error(c->ssl, n);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        c->tls_read_wants_write = true;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        c->tls_failed = true;
        if (errno == 0 || errno == ECONNRESET) {
            ERR_clear_error();
            return 0;
        }
        ERR_clear_error();
        return -1;
    default: {
        char why[160];
        c->tls_failed = true;
        ssl_reason(why, sizeof why, "protocol error");
        if (handshaking)
            IM_INFO("peer=%s TLS handshake failed: %s", c->peer, why);
        else
            IM_WARN("user=%s peer=%s TLS error: %s", im__conn_who(c), c->peer, why);
        errno = EPROTO;
        return -1;
    }
    }
}

int im__tls_write(im_conn *c)
{
    struct evbuffer_iovec v;
    if (evbuffer_peek(c->out, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
        return 0;
    int n = SSL_write(c->ssl, v.iov_base, v.iov_len > INT32_MAX ? INT32_MAX : (int)v.iov_len);
    if (n > 0) {
        evbuffer_drain(c->out, (size_t)n);
        return n;
    }
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_WRITE:
    case SSL_ERROR_WANT_READ: /* the handshake is not done: the reads drive it */
        errno = EAGAIN;
        return -1;
    default:
        c->tls_failed = true;
        ERR_clear_error();
        errno = EPIPE;
        return -1;
    }
}

int im_net_check_listeners(const im_net_listener_config *l, unsigned n, im_error *err)
{
    for (unsigned i = 0; i < n; i++) {
        if (!l[i].transport || strcmp(l[i].transport, "tls") != 0)
            continue;
        im_tls_server *t = NULL;
        int rc = im__tls_server_new(&l[i], &t, err);
        im__tls_server_free(t);
        if (rc != IM_OK)
            return rc;
    }
    return IM_OK;
}

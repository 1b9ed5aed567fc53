/*
 * tls.h — the TLS context for HTTPS: a PEM certificate (chain) and its
 * private key, checked at start-up, with ALPN offering HTTP/2 ("h2") and
 * HTTP/1.1.  Owns nothing beyond the SSL_CTX it hands back.
 */
#ifndef TALLY_NET_TLS_H
#define TALLY_NET_TLS_H

#include <openssl/ssl.h>

#include "core/error.h"

/* Builds the context from cert_file (PEM: the certificate, then any
 * intermediates) and key_file (PEM, unencrypted).  On a missing, unreadable,
 * malformed or mismatched file: NULL, and err says which file, what is wrong
 * with it and what to do.  Free the result with SSL_CTX_free. */
SSL_CTX *tally_tls_context_new(const char *cert_file, const char *key_file, tally_error *err);

#endif

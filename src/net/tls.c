/* tls.c — the HTTPS context, with our words for every start-up failure; see tls.h. */
#include "net/tls.h"

#include <errno.h>
#include <h2o.h>
#include <h2o/http2.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

/* An encrypted key would make OpenSSL ask for a pass phrase on the terminal: refuse instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    (void)buf, (void)size, (void)rwflag, (void)arg;
    return 0;
}

/* Whether path can be opened for reading; if not, err names the flag, the file and why. */
static int check_readable(const char *flag, const char *path, tally_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return tally_fail(err, TALLY_BAD_REQUEST, NULL, "%s %s cannot be read: %s", flag, path, strerror(errno));
    fclose(f);
    return 0;
}

SSL_CTX *tally_tls_context_new(const char *cert_file, const char *key_file, tally_error *err)
{
    if (!cert_file || !key_file) {
        tally_fail(err, TALLY_BAD_REQUEST, NULL, "HTTPS needs both --tls-cert FILE and --tls-key FILE (PEM); %s was "
                   "not given", cert_file ? "--tls-key" : "--tls-cert");
        return NULL;
    }
    if (check_readable("--tls-cert", cert_file, err) || check_readable("--tls-key", key_file, err))
        return NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        tally_fail(err, TALLY_INTERNAL, NULL, "cannot set up TLS (out of memory?)");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        tally_fail(err, TALLY_BAD_REQUEST, NULL,
                   "--tls-cert %s holds no usable PEM certificate: give the certificate (and any intermediates) as "
                   "text starting with -----BEGIN CERTIFICATE-----", cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
            tally_fail(err, TALLY_BAD_REQUEST, NULL,
                       "--tls-key %s is not the private key of the certificate in --tls-cert %s: give the key the "
                       "certificate was made with", key_file, cert_file);
        else
            tally_fail(err, TALLY_BAD_REQUEST, NULL,
                       "--tls-key %s holds no usable PEM private key: give an unencrypted key as text starting "
                       "with -----BEGIN PRIVATE KEY----- (an encrypted one can be decrypted with "
                       "`openssl pkey -in KEY -out KEY.plain`)", key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        tally_fail(err, TALLY_BAD_REQUEST, NULL,
                   "--tls-key %s is not the private key of the certificate in --tls-cert %s: give the key the "
                   "certificate was made with", key_file, cert_file);
        goto fail;
    }
    ERR_clear_error();
    h2o_ssl_register_alpn_protocols(ctx, h2o_alpn_protocols); /* h2, then http/1.1 */
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

/*
 * openapi.h — the OpenAPI 3.1 description of a server's API, generated from
 * its schema (README "API description").
 *
 * Built once at start-up and served unchanged at GET /api/openapi.json: every
 * model's record, create and update bodies and filter, every call with the
 * error answers it can give, the declared limits, locks, keys, /health,
 * /metrics and the WebSocket endpoint.
 */
#ifndef TALLY_API_OPENAPI_H
#define TALLY_API_OPENAPI_H

#include <stddef.h>

#include "core/schema.h"

/* The document as compact JSON text, NUL-terminated; *len is its length.
 * malloc'ed, handed over to the caller (free it).  schema is borrowed. */
char *tally_openapi_build(const tally_schema *schema, size_t *len);

#endif

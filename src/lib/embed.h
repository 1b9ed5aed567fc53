/*
 * embed.h — what the `tally` command (src/cli/main.c) needs of an open
 * libtally handle beyond the public include/tally.h: the engine and schema
 * underneath, to serve them over HTTP with its own tally_api (access rules,
 * console, API keys).  Both are the handle's, borrowed until tally_close.
 */
#ifndef TALLY_LIB_EMBED_H
#define TALLY_LIB_EMBED_H

#include "core/error.h" /* first: the engine's tally_error and codes, which tally.h then leaves alone */
#include "core/schema.h"
#include "exec/engine.h"
#include "tally.h"

tally_engine *tally_lib_engine(tally *t);
const tally_schema *tally_lib_schema(const tally *t);

#endif

/*
 * gen_ts.h — `tally gen ts --schema FILE [--out FILE]`: TypeScript types for
 * a schema's models, for @tally/client (clients/js).  Per model it writes
 * the record as the server answers it, the body a create takes and the body
 * an update takes (only numeric fields in `_atomics`, belongsTo as ids), and
 * a `Schema` type to pass to createClient<Schema>().  It reads the schema
 * with the server's own parser, so a schema the server refuses is refused
 * here with the same message.
 */
#ifndef TALLY_CLI_GEN_TS_H
#define TALLY_CLI_GEN_TS_H

#include "core/buf.h"
#include "core/schema.h"

/* The TypeScript text for schema into out (appended); source names the
 * schema file in the header comment.  0, or -1 with a message in err
 * (two models whose type names would clash). */
int tally_gen_ts(const tally_schema *schema, const char *source, tally_buf *out, char *err, size_t errlen);

/* `tally gen ts …` with argv from "gen": the exit status (0, 1 for a bad
 * schema or an unwritable file, 2 for a usage mistake). */
int tally_gen_cli(int argc, char **argv);

#endif

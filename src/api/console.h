/*
 * console.h — the web console's static files (the project's console/
 * folder), served at /console from the server's own origin.
 *
 * The files are read into memory once at start-up, from the folder given
 * with --console-dir or found beside the binary (tally_console_find), so a
 * request can only ever get one of the files that were there, by its exact
 * name: no path from a request reaches the file system.  The console holds
 * no data and needs no token to be loaded; the page asks for one and sends
 * it with each API call.
 */
#ifndef TALLY_API_CONSOLE_H
#define TALLY_API_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>

#include "api/api.h"

typedef struct tally_console tally_console;

/* The console folder: dir itself when given (it must hold index.html), else
 * the first of EXE_DIR/console (a build tree: meson copies console/ there)
 * and EXE_DIR/../share/tally/console (meson install) that holds index.html.
 * 0 with out set; -1 with err saying where it looked. */
int tally_console_find(const char *dir, char *out, size_t cap, char *err, size_t errlen);

/* Reads every regular file of dir (not below it) into memory.  NULL with err on failure. */
tally_console *tally_console_load(const char *dir, char *err, size_t errlen);
void tally_console_free(tally_console *console);

/* Whether the path (without its query) is /console or below it. */
bool tally_console_path(const char *path, size_t len);

/* Answers a /console request now (TALLY_API_NOW): the file (/console and
 * /console/ are index.html), 404 for another name, 405 for a method other
 * than GET or HEAD.  console may be NULL (no files were found): a 404
 * saying so. */
int tally_console_answer(const tally_console *console, const tally_http_request *req, tally_http_response *resp);

#endif

/* sync_vfs: an SQLite VFS shim that wraps the platform's default VFS and
 * counts every xSync made through the files it opened, so /metrics can
 * report the fsyncs the server really asked for (the proof that group commit
 * happens). It owns one process-wide VFS object and one atomic counter;
 * everything else is forwarded unchanged to the wrapped VFS. */
#ifndef TALLY_STORE_SYNC_VFS_H
#define TALLY_STORE_SYNC_VFS_H

#include <stdint.h>

/* Name to pass to sqlite3_open_v2's zVfs argument. */
#define TALLY_SYNC_VFS_NAME "tally-sync"

/* Registers (once; idempotent, thread-safe) a VFS named "tally-sync" wrapping
 * the default VFS; it is not made the default. Returns SQLITE_OK or an SQLite
 * error code; after a failure a later call tries again. */
int tally_sync_vfs_register(void);

/* Number of xSync calls through the shim since start (atomic, any thread).
 * This counts SQLite's sync requests, one per xSync, whether or not the sync
 * succeeded; directory fsyncs the wrapped VFS makes on its own (after
 * creating or deleting a journal) are not xSync calls and are not counted. */
uint64_t tally_sync_vfs_count(void);

#endif

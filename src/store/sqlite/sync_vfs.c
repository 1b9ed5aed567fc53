/* sync_vfs: an SQLite VFS shim that wraps the default VFS and counts xSync
 * calls (see sync_vfs.h). It owns the "tally-sync" sqlite3_vfs object, the
 * three io_methods tables handed out to wrapped files, and the sync counter.
 * Every method forwards to the wrapped VFS or file; only xSync (counts),
 * xOpen (wraps) and xFileControl(SQLITE_FCNTL_VFSNAME) (names the shim) add
 * anything. */
#include "store/sqlite/sync_vfs.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* A file opened through the shim. SQLite allocates szOsFile bytes for it; the
 * wrapped VFS's own file object lives right after this header, and `real`
 * points there. */
typedef struct {
    sqlite3_file base;
    sqlite3_file *real;
} sync_file;

/* The real file starts at sizeof(sync_file) bytes into an allocation that
 * SQLite aligns to 8 bytes; it must be as aligned as the real VFS expects
 * (unixFile holds 64-bit integers and pointers). */
_Static_assert(sizeof(sync_file) % alignof(sqlite3_int64) == 0 &&
               sizeof(sync_file) % alignof(void *) == 0,
               "the wrapped file would be misaligned");

static _Atomic uint64_t g_sync_count;

static sqlite3_file *real_file(sqlite3_file *f)
{
    return ((sync_file *)f)->real;
}

/* ---- file methods ---------------------------------------------------- */

static int sf_close(sqlite3_file *f)
{
    sqlite3_file *r = real_file(f);
    int rc = SQLITE_OK;
    if (r->pMethods)
        rc = r->pMethods->xClose(r);
    f->pMethods = NULL;
    return rc;
}

static int sf_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
    sqlite3_file *r = real_file(f);
    return r->pMethods->xRead(r, buf, amt, off);
}

static int sf_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
    sqlite3_file *r = real_file(f);
    return r->pMethods->xWrite(r, buf, amt, off);
}

static int sf_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    sqlite3_file *r = real_file(f);
    return r->pMethods->xTruncate(r, size);
}

static int sf_sync(sqlite3_file *f, int flags)
{
    sqlite3_file *r = real_file(f);
    /* Counted before the call, so a failed sync is still a sync SQLite asked
     * for. Relaxed order: the counter is a statistic and orders nothing. */
    atomic_fetch_add_explicit(&g_sync_count, 1, memory_order_relaxed);
    return r->pMethods->xSync(r, flags);
}

static int sf_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    sqlite3_file *r = real_file(f);
    return r->pMethods->xFileSize(r, size);
}

static int sf_lock(sqlite3_file *f, int level)
{
    sqlite3_file *r = real_file(f);
    return r->pMethods->xLock(r, level);
}

static int sf_unlock(sqlite3_file *f, int level)
{
    sqlite3_file *r = real_file(f);
    return r->pMethods->xUnlock(r, level);
}

static int sf_check_reserved_lock(sqlite3_file *f, int *out)
{
    sqlite3_file *r = real_file(f);
    return r->pMethods->xCheckReservedLock(r, out);
}

static int sf_file_control(sqlite3_file *f, int op, void *arg)
{
    sqlite3_file *r = real_file(f);
    int rc = r->pMethods->xFileControl(r, op, arg);
    /* SQLITE_FCNTL_VFSNAME reports the stack of VFSes, outermost first, so
     * that "PRAGMA vfs" style diagnostics show the shim is in place. */
    if (op == SQLITE_FCNTL_VFSNAME) {
        char **name = arg;
        if (rc == SQLITE_OK && *name) {
            char *both = sqlite3_mprintf("%s/%s", TALLY_SYNC_VFS_NAME, *name);
            if (both) {
                sqlite3_free(*name);
                *name = both;
            }
        } else if (rc == SQLITE_NOTFOUND) {
            char *ours = sqlite3_mprintf("%s", TALLY_SYNC_VFS_NAME);
            if (ours) {
                *name = ours;
                rc = SQLITE_OK;
            }
        }
    }
    return rc;
}

static int sf_sector_size(sqlite3_file *f)
{
    sqlite3_file *r = real_file(f);
    return r->pMethods->xSectorSize(r);
}

static int sf_device_characteristics(sqlite3_file *f)
{
    sqlite3_file *r = real_file(f);
    return r->pMethods->xDeviceCharacteristics(r);
}

static int sf_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    sqlite3_file *r = real_file(f);
    return r->pMethods->xShmMap(r, pg, pgsz, extend, pp);
}

static int sf_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    sqlite3_file *r = real_file(f);
    return r->pMethods->xShmLock(r, offset, n, flags);
}

static void sf_shm_barrier(sqlite3_file *f)
{
    sqlite3_file *r = real_file(f);
    r->pMethods->xShmBarrier(r);
}

static int sf_shm_unmap(sqlite3_file *f, int delete_flag)
{
    sqlite3_file *r = real_file(f);
    return r->pMethods->xShmUnmap(r, delete_flag);
}

static int sf_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
    sqlite3_file *r = real_file(f);
    return r->pMethods->xFetch(r, off, amt, pp);
}

static int sf_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    sqlite3_file *r = real_file(f);
    return r->pMethods->xUnfetch(r, off, p);
}

/* One table per io_methods version. A wrapped file gets the table whose
 * version matches its real file's, so SQLite never calls through the shim a
 * method (shm, mmap) that the real file does not have: it checks iVersion
 * before using them, and falls back (e.g. to heap-memory WAL index with
 * exclusive locking, or to plain reads) exactly as it would without us. */
#define SYNC_IO_METHODS(version)                                                \
    {                                                                           \
        .iVersion = (version),                                                  \
        .xClose = sf_close, .xRead = sf_read, .xWrite = sf_write,               \
        .xTruncate = sf_truncate, .xSync = sf_sync, .xFileSize = sf_file_size,  \
        .xLock = sf_lock, .xUnlock = sf_unlock,                                 \
        .xCheckReservedLock = sf_check_reserved_lock,                           \
        .xFileControl = sf_file_control, .xSectorSize = sf_sector_size,         \
        .xDeviceCharacteristics = sf_device_characteristics,                    \
        .xShmMap = sf_shm_map, .xShmLock = sf_shm_lock,                         \
        .xShmBarrier = sf_shm_barrier, .xShmUnmap = sf_shm_unmap,               \
        .xFetch = sf_fetch, .xUnfetch = sf_unfetch,                             \
    }

static const sqlite3_io_methods g_io_methods[3] = {
    SYNC_IO_METHODS(1), SYNC_IO_METHODS(2), SYNC_IO_METHODS(3),
};

/* ---- VFS methods ----------------------------------------------------- */

/* The wrapped VFS travels in pAppData (set once at registration). */
static sqlite3_vfs *real_vfs(sqlite3_vfs *vfs)
{
    return vfs->pAppData;
}

static int sv_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f,
                   int flags, int *out_flags)
{
    sqlite3_vfs *rv = real_vfs(vfs);
    sync_file *sf = (sync_file *)f;
    sf->base.pMethods = NULL;
    sf->real = (sqlite3_file *)(sf + 1);
    sf->real->pMethods = NULL;

    int rc = rv->xOpen(rv, name, sf->real, flags, out_flags);

    /* SQLite calls xClose whenever pMethods is non-NULL after xOpen, even if
     * xOpen failed, and never otherwise. Mirror the real file exactly so the
     * real xClose runs if and only if the real VFS expects it. */
    const sqlite3_io_methods *rm = sf->real->pMethods;
    if (rm) {
        int v = rm->iVersion;
        if (v < 1)
            v = 1;
        if (v > 3)
            v = 3;
        sf->base.pMethods = &g_io_methods[v - 1];
    }
    return rc;
}

static int sv_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    sqlite3_vfs *rv = real_vfs(vfs);
    return rv->xDelete(rv, name, sync_dir);
}

static int sv_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    sqlite3_vfs *rv = real_vfs(vfs);
    return rv->xAccess(rv, name, flags, out);
}

static int sv_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    sqlite3_vfs *rv = real_vfs(vfs);
    return rv->xFullPathname(rv, name, n, out);
}

static void *sv_dl_open(sqlite3_vfs *vfs, const char *path)
{
    sqlite3_vfs *rv = real_vfs(vfs);
    return rv->xDlOpen(rv, path);
}

static void sv_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
    sqlite3_vfs *rv = real_vfs(vfs);
    rv->xDlError(rv, n, msg);
}

static void (*sv_dl_sym(sqlite3_vfs *vfs, void *handle, const char *sym))(void)
{
    sqlite3_vfs *rv = real_vfs(vfs);
    return rv->xDlSym(rv, handle, sym);
}

static void sv_dl_close(sqlite3_vfs *vfs, void *handle)
{
    sqlite3_vfs *rv = real_vfs(vfs);
    rv->xDlClose(rv, handle);
}

static int sv_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    sqlite3_vfs *rv = real_vfs(vfs);
    return rv->xRandomness(rv, n, out);
}

static int sv_sleep(sqlite3_vfs *vfs, int usec)
{
    sqlite3_vfs *rv = real_vfs(vfs);
    return rv->xSleep(rv, usec);
}

static int sv_current_time(sqlite3_vfs *vfs, double *out)
{
    sqlite3_vfs *rv = real_vfs(vfs);
    return rv->xCurrentTime(rv, out);
}

static int sv_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    sqlite3_vfs *rv = real_vfs(vfs);
    return rv->xGetLastError ? rv->xGetLastError(rv, n, out) : 0;
}

/* The methods below exist in the shim only when the wrapped VFS's version
 * has them (g_vfs.iVersion is copied from it), so they can forward blindly. */
static int sv_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    sqlite3_vfs *rv = real_vfs(vfs);
    return rv->xCurrentTimeInt64(rv, out);
}

static int sv_set_system_call(sqlite3_vfs *vfs, const char *name, sqlite3_syscall_ptr p)
{
    sqlite3_vfs *rv = real_vfs(vfs);
    return rv->xSetSystemCall(rv, name, p);
}

static sqlite3_syscall_ptr sv_get_system_call(sqlite3_vfs *vfs, const char *name)
{
    sqlite3_vfs *rv = real_vfs(vfs);
    return rv->xGetSystemCall(rv, name);
}

static const char *sv_next_system_call(sqlite3_vfs *vfs, const char *name)
{
    sqlite3_vfs *rv = real_vfs(vfs);
    return rv->xNextSystemCall(rv, name);
}

/* iVersion, szOsFile, mxPathname and pAppData are filled in at registration,
 * from the wrapped VFS. */
static sqlite3_vfs g_vfs = {
    .zName = TALLY_SYNC_VFS_NAME,
    .xOpen = sv_open,
    .xDelete = sv_delete,
    .xAccess = sv_access,
    .xFullPathname = sv_full_pathname,
    .xDlOpen = sv_dl_open,
    .xDlError = sv_dl_error,
    .xDlSym = sv_dl_sym,
    .xDlClose = sv_dl_close,
    .xRandomness = sv_randomness,
    .xSleep = sv_sleep,
    .xCurrentTime = sv_current_time,
    .xGetLastError = sv_get_last_error,
    .xCurrentTimeInt64 = sv_current_time_int64,
    .xSetSystemCall = sv_set_system_call,
    .xGetSystemCall = sv_get_system_call,
    .xNextSystemCall = sv_next_system_call,
};

/* ---- registration ---------------------------------------------------- */

/* A mutex rather than pthread_once so that a failed registration (no default
 * VFS yet, out of memory) can be retried by a later call. The atomic flag
 * keeps the common already-registered path lock-free. */
static pthread_mutex_t g_register_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool g_registered;

int tally_sync_vfs_register(void)
{
    if (atomic_load_explicit(&g_registered, memory_order_acquire))
        return SQLITE_OK;

    pthread_mutex_lock(&g_register_lock);
    int rc = SQLITE_OK;
    if (!atomic_load_explicit(&g_registered, memory_order_relaxed)) {
        /* sqlite3_vfs_find initialises the library if needed; if it fails
         * (or the build has no VFS at all) it returns NULL. */
        sqlite3_vfs *rv = sqlite3_vfs_find(NULL);
        if (!rv) {
            rc = SQLITE_ERROR;
        } else if (rv->szOsFile > (int)(0x7fffffff - sizeof(sync_file))) {
            rc = SQLITE_ERROR;
        } else {
            /* g_vfs is written only here, under the lock and before SQLite
             * can see it; registration publishes it. */
            g_vfs.iVersion = rv->iVersion < 3 ? rv->iVersion : 3;
            g_vfs.szOsFile = (int)sizeof(sync_file) + rv->szOsFile;
            g_vfs.mxPathname = rv->mxPathname;
            g_vfs.pAppData = rv;
            rc = sqlite3_vfs_register(&g_vfs, 0);
            if (rc == SQLITE_OK)
                atomic_store_explicit(&g_registered, true, memory_order_release);
        }
    }
    pthread_mutex_unlock(&g_register_lock);
    return rc;
}

uint64_t tally_sync_vfs_count(void)
{
    return atomic_load_explicit(&g_sync_count, memory_order_relaxed);
}

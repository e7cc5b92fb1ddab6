/*
 * tsan-glib-locks — make GLib's locks visible to ThreadSanitizer.
 *
 * GLib's GMutex, GRWLock and GCond are built on futexes inside libglib, which
 * is not instrumented, so TSan sees neither the lock nor the happens-before
 * edge it makes: every field that ovgated guards with a GMutex (the iSCSI
 * session table, the registry, the listeners' counters) is reported as a
 * data race. Preloaded into a TSan build of ovgated
 * (LD_PRELOAD=.../libtsan-glib-locks.so), this library interposes the GLib
 * lock functions that the daemon calls, tells TSan about each acquire and
 * release through its mutex annotation interface (sanitizer/tsan_interface.h)
 * and forwards to the real function (dlsym RTLD_NEXT). What TSan reports
 * with it preloaded is a real race on the daemon's own memory, not a lock it
 * could not see.
 *
 * GTask's hand-over to its thread pool and back (g_task_run_in_thread,
 * g_task_return_*, g_task_propagate_*) happens inside GLib too; the task
 * itself is used as the synchronisation object for it here.
 *
 * Only calls from outside libglib are interposed (libglib binds its own calls
 * to itself), which is exactly the daemon's use of the locks. What remains
 * invisible is GLib's own internal hand-over (GAsyncQueue nodes of its
 * thread pool): tsan-suppressions.txt beside this file names those frames. The TSan entry
 * points are weak: in a process without the TSan runtime (bash, python3,
 * qemu-img under the same LD_PRELOAD) the functions just forward.
 */

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include <gio/gio.h>
#include <glib.h>

/* From sanitizer/tsan_interface.h (clang); weak so that the library loads
 * into processes without the TSan runtime. */
void __tsan_mutex_destroy(void *addr, unsigned flags) __attribute__((weak));
void __tsan_mutex_pre_lock(void *addr, unsigned flags) __attribute__((weak));
void __tsan_mutex_post_lock(void *addr, unsigned flags, int recursion) __attribute__((weak));
int __tsan_mutex_pre_unlock(void *addr, unsigned flags) __attribute__((weak));
void __tsan_mutex_post_unlock(void *addr, unsigned flags) __attribute__((weak));
void __tsan_acquire(void *addr) __attribute__((weak));
void __tsan_release(void *addr) __attribute__((weak));

#define TGL_READ_LOCK (1u << 3)
#define TGL_TRY_LOCK (1u << 4)
#define TGL_TRY_LOCK_FAILED (1u << 5)
#define TGL_NOT_STATIC (1u << 8)

static void *
tgl_real(const char *name)
{
    void *fn = dlsym(RTLD_NEXT, name);
    if (!fn) {
        fprintf(stderr, "tsan-glib-locks: %s not found: %s\n", name, dlerror());
        abort();
    }
    return fn;
}

/* The real GLib function NAME of type TYPE as local `fn`, looked up once
 * (atomically: the first calls may come from several threads at once). */
#define TGL_REAL(type, name)                                                                       \
    static type tgl_fn;                                                                            \
    type fn = __atomic_load_n(&tgl_fn, __ATOMIC_ACQUIRE);                                          \
    if (!fn) {                                                                                     \
        fn = (type)tgl_real(name);                                                                 \
        __atomic_store_n(&tgl_fn, fn, __ATOMIC_RELEASE);                                           \
    }

static void
tgl_locked(void *m, unsigned flags)
{
    if (__tsan_mutex_post_lock)
        __tsan_mutex_post_lock(m, flags, 0);
}

static void
tgl_pre_lock(void *m, unsigned flags)
{
    if (__tsan_mutex_pre_lock)
        __tsan_mutex_pre_lock(m, flags);
}

static void
tgl_pre_unlock(void *m, unsigned flags)
{
    if (__tsan_mutex_pre_unlock)
        __tsan_mutex_pre_unlock(m, flags);
}

static void
tgl_post_unlock(void *m, unsigned flags)
{
    if (__tsan_mutex_post_unlock)
        __tsan_mutex_post_unlock(m, flags);
}

static void
tgl_destroy(void *m)
{
    if (__tsan_mutex_destroy)
        __tsan_mutex_destroy(m, TGL_NOT_STATIC);
}

typedef void (*tgl_mutex_fn)(GMutex *);
typedef gboolean (*tgl_mutex_try_fn)(GMutex *);
typedef void (*tgl_rw_fn)(GRWLock *);
typedef gboolean (*tgl_rw_try_fn)(GRWLock *);
typedef void (*tgl_cond_wait_fn)(GCond *, GMutex *);
typedef gboolean (*tgl_cond_wait_until_fn)(GCond *, GMutex *, gint64);
typedef gboolean (*tgl_once_enter_fn)(volatile void *);
typedef void (*tgl_once_leave_fn)(volatile void *, gsize);

/* ---- GMutex ---- */

void
g_mutex_lock(GMutex *m)
{
    TGL_REAL(tgl_mutex_fn, "g_mutex_lock");
    tgl_pre_lock(m, 0);
    fn(m);
    tgl_locked(m, 0);
}

gboolean
g_mutex_trylock(GMutex *m)
{
    TGL_REAL(tgl_mutex_try_fn, "g_mutex_trylock");
    tgl_pre_lock(m, TGL_TRY_LOCK);
    gboolean ok = fn(m);
    tgl_locked(m, TGL_TRY_LOCK | (ok ? 0 : TGL_TRY_LOCK_FAILED));
    return ok;
}

void
g_mutex_unlock(GMutex *m)
{
    TGL_REAL(tgl_mutex_fn, "g_mutex_unlock");
    tgl_pre_unlock(m, 0);
    fn(m);
    tgl_post_unlock(m, 0);
}

void
g_mutex_clear(GMutex *m)
{
    TGL_REAL(tgl_mutex_fn, "g_mutex_clear");
    tgl_destroy(m);
    fn(m);
}

/* ---- GRWLock ---- */

void
g_rw_lock_writer_lock(GRWLock *l)
{
    TGL_REAL(tgl_rw_fn, "g_rw_lock_writer_lock");
    tgl_pre_lock(l, 0);
    fn(l);
    tgl_locked(l, 0);
}

gboolean
g_rw_lock_writer_trylock(GRWLock *l)
{
    TGL_REAL(tgl_rw_try_fn, "g_rw_lock_writer_trylock");
    tgl_pre_lock(l, TGL_TRY_LOCK);
    gboolean ok = fn(l);
    tgl_locked(l, TGL_TRY_LOCK | (ok ? 0 : TGL_TRY_LOCK_FAILED));
    return ok;
}

void
g_rw_lock_writer_unlock(GRWLock *l)
{
    TGL_REAL(tgl_rw_fn, "g_rw_lock_writer_unlock");
    tgl_pre_unlock(l, 0);
    fn(l);
    tgl_post_unlock(l, 0);
}

void
g_rw_lock_reader_lock(GRWLock *l)
{
    TGL_REAL(tgl_rw_fn, "g_rw_lock_reader_lock");
    tgl_pre_lock(l, TGL_READ_LOCK);
    fn(l);
    tgl_locked(l, TGL_READ_LOCK);
}

gboolean
g_rw_lock_reader_trylock(GRWLock *l)
{
    TGL_REAL(tgl_rw_try_fn, "g_rw_lock_reader_trylock");
    tgl_pre_lock(l, TGL_READ_LOCK | TGL_TRY_LOCK);
    gboolean ok = fn(l);
    tgl_locked(l, TGL_READ_LOCK | TGL_TRY_LOCK | (ok ? 0 : TGL_TRY_LOCK_FAILED));
    return ok;
}

void
g_rw_lock_reader_unlock(GRWLock *l)
{
    TGL_REAL(tgl_rw_fn, "g_rw_lock_reader_unlock");
    tgl_pre_unlock(l, TGL_READ_LOCK);
    fn(l);
    tgl_post_unlock(l, TGL_READ_LOCK);
}

void
g_rw_lock_clear(GRWLock *l)
{
    TGL_REAL(tgl_rw_fn, "g_rw_lock_clear");
    tgl_destroy(l);
    fn(l);
}

/* ---- GCond: the wait releases and re-takes the mutex ---- */

void
g_cond_wait(GCond *c, GMutex *m)
{
    TGL_REAL(tgl_cond_wait_fn, "g_cond_wait");
    tgl_pre_unlock(m, 0);
    tgl_post_unlock(m, 0);
    fn(c, m);
    tgl_pre_lock(m, 0);
    tgl_locked(m, 0);
}

gboolean
g_cond_wait_until(GCond *c, GMutex *m, gint64 end_time)
{
    TGL_REAL(tgl_cond_wait_until_fn, "g_cond_wait_until");
    tgl_pre_unlock(m, 0);
    tgl_post_unlock(m, 0);
    gboolean ok = fn(c, m, end_time);
    tgl_pre_lock(m, 0);
    tgl_locked(m, 0);
    return ok;
}

/* ---- g_once_init_enter/leave: the value is published with a release
 * store inside libglib. g_once_init_enter's fast path is an acquire load
 * inlined into the caller, which TSan sees; its slow path waits inside
 * libglib, which TSan does not. ---- */

gboolean(g_once_init_enter)(volatile void *location)
{
    TGL_REAL(tgl_once_enter_fn, "g_once_init_enter");
    gboolean first = fn(location);
    if (!first && __tsan_acquire)
        __tsan_acquire((void *)location);
    return first;
}

void(g_once_init_leave)(volatile void *location, gsize result)
{
    TGL_REAL(tgl_once_leave_fn, "g_once_init_leave");
    if (__tsan_release)
        __tsan_release((void *)location);
    fn(location, result);
}

/* ---- GTask: run in a thread, return, propagate ---- */

typedef void (*tgl_task_run_fn)(GTask *, GTaskThreadFunc);
typedef void (*tgl_task_ret_ptr_fn)(GTask *, gpointer, GDestroyNotify);
typedef void (*tgl_task_ret_bool_fn)(GTask *, gboolean);
typedef void (*tgl_task_ret_int_fn)(GTask *, gssize);
typedef void (*tgl_task_ret_error_fn)(GTask *, GError *);
typedef gpointer (*tgl_task_prop_ptr_fn)(GTask *, GError **);
typedef gboolean (*tgl_task_prop_bool_fn)(GTask *, GError **);
typedef gssize (*tgl_task_prop_int_fn)(GTask *, GError **);

static const char tgl_task_func_key[] = "tsan-glib-locks-thread-func";

static void
tgl_release(void *obj)
{
    if (__tsan_release)
        __tsan_release(obj);
}

static void
tgl_acquire(void *obj)
{
    if (__tsan_acquire)
        __tsan_acquire(obj);
}

/* Runs in the pool thread in place of the caller's function. */
static void
tgl_task_thread(GTask *task, gpointer src, gpointer data, GCancellable *cancel)
{
    GTaskThreadFunc func = (GTaskThreadFunc)g_object_get_data(G_OBJECT(task), tgl_task_func_key);
    tgl_acquire(task);
    func(task, src, data, cancel);
}

static void
tgl_task_run(GTask *task, GTaskThreadFunc func, const char *name)
{
    tgl_task_run_fn fn = (tgl_task_run_fn)tgl_real(name);
    g_object_set_data(G_OBJECT(task), tgl_task_func_key, (gpointer)func);
    tgl_release(task);
    fn(task, tgl_task_thread);
}

void
g_task_run_in_thread(GTask *task, GTaskThreadFunc func)
{
    tgl_task_run(task, func, "g_task_run_in_thread");
}

void
g_task_run_in_thread_sync(GTask *task, GTaskThreadFunc func)
{
    tgl_task_run(task, func, "g_task_run_in_thread_sync");
    tgl_acquire(task);
}

void
g_task_return_pointer(GTask *task, gpointer result, GDestroyNotify destroy)
{
    TGL_REAL(tgl_task_ret_ptr_fn, "g_task_return_pointer");
    tgl_release(task);
    fn(task, result, destroy);
}

void
g_task_return_boolean(GTask *task, gboolean result)
{
    TGL_REAL(tgl_task_ret_bool_fn, "g_task_return_boolean");
    tgl_release(task);
    fn(task, result);
}

void
g_task_return_int(GTask *task, gssize result)
{
    TGL_REAL(tgl_task_ret_int_fn, "g_task_return_int");
    tgl_release(task);
    fn(task, result);
}

void
g_task_return_error(GTask *task, GError *error)
{
    TGL_REAL(tgl_task_ret_error_fn, "g_task_return_error");
    tgl_release(task);
    fn(task, error);
}

gpointer
g_task_propagate_pointer(GTask *task, GError **error)
{
    TGL_REAL(tgl_task_prop_ptr_fn, "g_task_propagate_pointer");
    tgl_acquire(task);
    return fn(task, error);
}

gboolean
g_task_propagate_boolean(GTask *task, GError **error)
{
    TGL_REAL(tgl_task_prop_bool_fn, "g_task_propagate_boolean");
    tgl_acquire(task);
    return fn(task, error);
}

gssize
g_task_propagate_int(GTask *task, GError **error)
{
    TGL_REAL(tgl_task_prop_int_fn, "g_task_propagate_int");
    tgl_acquire(task);
    return fn(task, error);
}

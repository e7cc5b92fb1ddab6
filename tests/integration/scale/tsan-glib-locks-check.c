/*
 * tsan-glib-locks-check — proves that libtsan-glib-locks.so works: two
 * threads count under a GMutex and hand over through a GCond, which must be
 * clean under TSan with the library preloaded; with "racy" each thread also
 * writes one variable outside the lock, which TSan must still report (exit
 * status 66), so the library hides no real race.
 */

#include <glib.h>

static GMutex check_lock;
static GCond check_cond;
static int check_counter;
static int check_done;
static int check_racy;

static gpointer
check_worker(gpointer racy)
{
    for (int i = 0; i < 1000; i++) {
        g_mutex_lock(&check_lock);
        check_counter++;
        g_mutex_unlock(&check_lock);
    }
    g_mutex_lock(&check_lock);
    check_done = 1;
    g_cond_signal(&check_cond);
    g_mutex_unlock(&check_lock);
    if (racy)
        check_racy++;
    return NULL;
}

int
main(int argc, char **argv)
{
    gboolean racy = argc > 1 && g_str_equal(argv[1], "racy");
    GThread *t = g_thread_new("check", check_worker, racy ? &check_racy : NULL);
    for (int i = 0; i < 1000; i++) {
        g_mutex_lock(&check_lock);
        check_counter++;
        g_mutex_unlock(&check_lock);
    }
    g_mutex_lock(&check_lock);
    while (!check_done)
        g_cond_wait(&check_cond, &check_lock);
    g_mutex_unlock(&check_lock);
    if (racy)
        check_racy++;
    g_thread_join(t);
    return check_counter == 2000 ? 0 : 1;
}

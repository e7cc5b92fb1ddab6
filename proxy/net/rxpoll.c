/* rxpoll.c — adaptive busy-polling before blocking receives (rxpoll.h). */
#include <errno.h>
#include <sys/socket.h>
#include <glib.h>

#include "rxpoll.h"

static gint rxpoll_us = NET_RXPOLL_DEFAULT_US;
static gint rxpoll_active; /* threads polling now */
static gint rxpoll_limit;  /* 0 = not computed yet */

void
net_rxpoll_set_us(unsigned us)
{
    g_atomic_int_set(&rxpoll_us, (gint)MIN(us, (unsigned)NET_RXPOLL_MAX_US));
}

unsigned
net_rxpoll_get_us(void)
{
    return (unsigned)g_atomic_int_get(&rxpoll_us);
}

unsigned
net_rxpoll_max_pollers(void)
{
    gint limit = g_atomic_int_get(&rxpoll_limit);

    if (limit == 0) {
        limit = MAX(1, (gint)g_get_num_processors() - 1);
        g_atomic_int_set(&rxpoll_limit, limit);
    }
    return (unsigned)limit;
}

unsigned
net_rxpoll_active(void)
{
    return (unsigned)g_atomic_int_get(&rxpoll_active);
}

static bool
rxpoll_enter(void)
{
    gint limit = (gint)net_rxpoll_max_pollers();

    for (;;) {
        gint n = g_atomic_int_get(&rxpoll_active);
        if (n >= limit)
            return false;
        if (g_atomic_int_compare_and_exchange(&rxpoll_active, n, n + 1))
            return true;
    }
}

static ssize_t
recv_retry(int fd, void *buf, size_t len, int flags)
{
    ssize_t r;

    do
        r = recv(fd, buf, len, flags);
    while (r < 0 && errno == EINTR);
    return r;
}

ssize_t
net_recv_polled(int fd, void *buf, size_t len, int flags, struct net_rxpoll *st)
{
    unsigned window = net_rxpoll_get_us();
    gint64 start;
    ssize_t r;

    if (window == 0)
        return recv_retry(fd, buf, len, flags);
    start = g_get_monotonic_time();
    if (st->misses < NET_RXPOLL_MISSES_OFF && rxpoll_enter()) {
        gint64 end = start + window;
        st->polled++;
        do {
            r = recv(fd, buf, len, flags | MSG_DONTWAIT);
            if (r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                g_atomic_int_add(&rxpoll_active, -1);
                st->hits++;
                st->misses = 0;
                return r;
            }
        } while (g_get_monotonic_time() < end);
        g_atomic_int_add(&rxpoll_active, -1);
        st->misses++;
    }
    st->blocked++;
    r = recv_retry(fd, buf, len, flags);
    /* A wait that ended within the window shows polling would have paid:
     * a connection that had stopped polling takes it up again. */
    if (r > 0 && g_get_monotonic_time() - start <= (gint64)window)
        st->misses = 0;
    return r;
}

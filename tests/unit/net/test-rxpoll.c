/* test-rxpoll.c — net_recv_polled(): data in the window is a hit, an idle
 * peer turns polling off after NET_RXPOLL_MISSES_OFF windows, a quick
 * request after a blocking wait turns it back on, a window of 0 never
 * polls, errors and end of stream pass through, and no more than
 * net_rxpoll_max_pollers() threads poll at once. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <glib.h>

#include "rxpoll.h"

struct pair {
    int a, b; /* a: the server side read by net_recv_polled; b: the peer */
};

static void
pair_open(struct pair *p)
{
    int sv[2];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    p->a = sv[0];
    p->b = sv[1];
}

static void
pair_close(struct pair *p)
{
    if (p->a >= 0)
        close(p->a);
    if (p->b >= 0)
        close(p->b);
}

struct delayed_send {
    int fd;
    unsigned delay_us;
    char byte;
};

static gpointer
delayed_send_thread(gpointer data)
{
    struct delayed_send *d = data;

    g_usleep(d->delay_us);
    g_assert_cmpint(send(d->fd, &d->byte, 1, 0), ==, 1);
    return NULL;
}

/* Receive one byte that the peer sends after delay_us; returns the byte. */
static char
recv_after(struct pair *p, struct net_rxpoll *st, unsigned delay_us)
{
    struct delayed_send d = {.fd = p->b, .delay_us = delay_us, .byte = 'x'};
    GThread *t = g_thread_new("peer", delayed_send_thread, &d);
    char c = 0;

    g_assert_cmpint(net_recv_polled(p->a, &c, 1, 0, st), ==, 1);
    g_thread_join(t);
    return c;
}

static void
test_hit(void)
{
    struct pair p;
    struct net_rxpoll st = {0};
    char c = 0;

    net_rxpoll_set_us(200000 > NET_RXPOLL_MAX_US ? NET_RXPOLL_MAX_US : 200000);
    g_assert_cmpuint(net_rxpoll_get_us(), ==, NET_RXPOLL_MAX_US); /* clamped */
    pair_open(&p);
    /* Data already there: the first poll finds it. */
    g_assert_cmpint(send(p.b, "a", 1, 0), ==, 1);
    g_assert_cmpint(net_recv_polled(p.a, &c, 1, 0, &st), ==, 1);
    g_assert_cmpint(c, ==, 'a');
    g_assert_cmpuint(st.polled, ==, 1);
    g_assert_cmpuint(st.hits, ==, 1);
    g_assert_cmpuint(st.blocked, ==, 0);
    g_assert_cmpuint(st.misses, ==, 0);
    pair_close(&p);
}

static void
test_idle_peer_stops_polling(void)
{
    struct pair p;
    struct net_rxpoll st = {0};

    net_rxpoll_set_us(100);
    pair_open(&p);
    /* A peer slower than the window: each wait polls, misses, blocks. */
    for (unsigned i = 0; i < NET_RXPOLL_MISSES_OFF; i++) {
        g_assert_cmpint(recv_after(&p, &st, 20000), ==, 'x');
        g_assert_cmpuint(st.misses, ==, i + 1);
    }
    g_assert_cmpuint(st.polled, ==, NET_RXPOLL_MISSES_OFF);
    g_assert_cmpuint(st.hits, ==, 0);
    g_assert_cmpuint(st.blocked, ==, NET_RXPOLL_MISSES_OFF);
    /* Polling is now off: the next slow wait blocks without polling. */
    g_assert_cmpint(recv_after(&p, &st, 20000), ==, 'x');
    g_assert_cmpuint(st.polled, ==, NET_RXPOLL_MISSES_OFF);
    g_assert_cmpuint(st.misses, ==, NET_RXPOLL_MISSES_OFF);
    /* A request already waiting when we block shows the window would have
     * paid: polling resumes. */
    g_assert_cmpint(send(p.b, "y", 1, 0), ==, 1);
    {
        char c = 0;
        g_assert_cmpint(net_recv_polled(p.a, &c, 1, 0, &st), ==, 1);
        g_assert_cmpint(c, ==, 'y');
    }
    g_assert_cmpuint(st.polled, ==, NET_RXPOLL_MISSES_OFF);
    g_assert_cmpuint(st.misses, ==, 0);
    g_assert_cmpint(send(p.b, "z", 1, 0), ==, 1);
    {
        char c = 0;
        g_assert_cmpint(net_recv_polled(p.a, &c, 1, 0, &st), ==, 1);
        g_assert_cmpint(c, ==, 'z');
    }
    g_assert_cmpuint(st.polled, ==, NET_RXPOLL_MISSES_OFF + 1);
    g_assert_cmpuint(st.hits, ==, 1);
    pair_close(&p);
}

static void
test_off(void)
{
    struct pair p;
    struct net_rxpoll st = {0};

    net_rxpoll_set_us(0);
    pair_open(&p);
    g_assert_cmpint(recv_after(&p, &st, 1000), ==, 'x');
    g_assert_cmpuint(st.polled + st.hits + st.blocked, ==, 0);
    pair_close(&p);
    net_rxpoll_set_us(NET_RXPOLL_DEFAULT_US);
}

static void
test_end_and_errors(void)
{
    struct pair p;
    struct net_rxpoll st = {0};
    char c;

    net_rxpoll_set_us(NET_RXPOLL_DEFAULT_US);
    pair_open(&p);
    close(p.b);
    p.b = -1;
    g_assert_cmpint(net_recv_polled(p.a, &c, 1, 0, &st), ==, 0); /* end of stream */
    pair_close(&p);
    errno = 0;
    g_assert_cmpint(net_recv_polled(-1, &c, 1, 0, &st), ==, -1);
    g_assert_cmpint(errno, ==, EBADF);
    /* A receive timeout (SO_RCVTIMEO) comes back as EAGAIN after the wait. */
    pair_open(&p);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 20000};
    g_assert_cmpint(setsockopt(p.a, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), ==, 0);
    errno = 0;
    g_assert_cmpint(net_recv_polled(p.a, &c, 1, 0, &st), ==, -1);
    g_assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    pair_close(&p);
}

/* Width: of many threads waiting at once, never more than
 * net_rxpoll_max_pollers() poll at the same time. A sampler watches the
 * number of pollers while the waiters' (long) windows overlap. */
#define WAITERS 6

struct waiter {
    struct pair p;
    struct net_rxpoll st;
    GThread *t;
};

static gpointer
waiter_thread(gpointer data)
{
    struct waiter *w = data;
    char c = 0;

    g_assert_cmpint(net_recv_polled(w->p.a, &c, 1, 0, &w->st), ==, 1);
    return NULL;
}

static void
test_width(void)
{
    struct waiter w[WAITERS];
    unsigned limit = net_rxpoll_max_pollers(), max_seen = 0, polled = 0;
    gint64 end;

    g_assert_cmpuint(limit, ==, MAX(1, g_get_num_processors() - 1));
    net_rxpoll_set_us(NET_RXPOLL_MAX_US);
    memset(w, 0, sizeof(w));
    for (int i = 0; i < WAITERS; i++) {
        pair_open(&w[i].p);
        w[i].t = g_thread_new("waiter", waiter_thread, &w[i]);
    }
    /* Sample for well past every window, then wake them all. */
    end = g_get_monotonic_time() + 100000;
    while (g_get_monotonic_time() < end)
        max_seen = MAX(max_seen, net_rxpoll_active());
    for (int i = 0; i < WAITERS; i++)
        g_assert_cmpint(send(w[i].p.b, "w", 1, 0), ==, 1);
    for (int i = 0; i < WAITERS; i++) {
        g_thread_join(w[i].t);
        polled += (unsigned)w[i].st.polled;
        g_assert_cmpuint(w[i].st.hits, ==, 0);
        g_assert_cmpuint(w[i].st.blocked, ==, 1);
        pair_close(&w[i].p);
    }
    g_assert_cmpuint(max_seen, <=, limit);
    g_assert_cmpuint(polled, >=, 1);
    g_assert_cmpuint(net_rxpoll_active(), ==, 0);
    net_rxpoll_set_us(NET_RXPOLL_DEFAULT_US);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/net/rxpoll/hit", test_hit);
    g_test_add_func("/net/rxpoll/idle-peer-stops-polling", test_idle_peer_stops_polling);
    g_test_add_func("/net/rxpoll/off", test_off);
    g_test_add_func("/net/rxpoll/end-and-errors", test_end_and_errors);
    g_test_add_func("/net/rxpoll/width", test_width);
    return g_test_run();
}

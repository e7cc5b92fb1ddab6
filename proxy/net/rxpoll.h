/* rxpoll.h — bounded, adaptive busy-polling before a connection thread
 * blocks in recv() (docs/concurrency.md "Receive polling").
 *
 * A connection thread that has just answered every request it holds would
 * block in recv() and put its CPU to sleep; the next request then has to
 * wake it, and on a virtual machine a cross-CPU wake-up of an idle vCPU
 * costs tens of microseconds — more than serving a cached 4 KiB read. So,
 * for up to net_rxpoll_get_us() microseconds, the thread first polls the
 * socket with non-blocking reads, and only then blocks.
 *
 * The polling is bounded three ways, so it cannot eat a busy machine:
 * - in time: at most the configured window per wait (0 turns it off);
 * - by use: a connection whose peer left the window unused several times in
 *   a row (an idle or slow client) stops polling, and resumes only after a
 *   blocking wait shows a request arriving within the window again;
 * - in width: at most max(1, CPUs - 1) threads poll at once daemon-wide;
 *   the rest block at once.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cfg.h"

/* Default window and its bound, microseconds (config key busy-poll-us). */
#define NET_RXPOLL_DEFAULT_US CFG_DEFAULT_BUSY_POLL_US
#define NET_RXPOLL_MAX_US CFG_BUSY_POLL_MAX_US
/* Consecutive unused windows after which a connection stops polling. */
#define NET_RXPOLL_MISSES_OFF 4

/* Per-connection state; zero-initialise. */
struct net_rxpoll {
    unsigned misses;                /* consecutive windows that ended without data */
    uint64_t polled, hits, blocked; /* counters, for tests and debugging */
};

/* Set / get the daemon-wide window (0..NET_RXPOLL_MAX_US; larger is clamped). */
void net_rxpoll_set_us(unsigned us);
unsigned net_rxpoll_get_us(void);
/* The limit of threads polling at once, and how many poll now (for tests
 * and status). */
unsigned net_rxpoll_max_pollers(void);
unsigned net_rxpoll_active(void);

/* recv(fd, buf, len, flags) for a caller that would otherwise block: poll
 * first as described above, then block with recv(..., flags). Returns what
 * the final recv() returned, errno set as it left it (EINTR is retried;
 * EAGAIN from SO_RCVTIMEO is passed up). */
ssize_t net_recv_polled(int fd, void *buf, size_t len, int flags, struct net_rxpoll *st);

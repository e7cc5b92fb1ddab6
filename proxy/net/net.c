/* net.c — TCP listeners, one accept thread per listener, one detached thread
 * per connection (docs/concurrency.md explains why threads and not an event
 * loop).
 *
 * Stopping: an accept thread blocks in accept4(); shutdown(SHUT_RDWR) on the
 * listening socket wakes it with EINVAL on Linux, after which it sees the
 * stopping flag and returns. Connection threads are counted under a mutex;
 * net_server_wait_idle() waits on a condition variable for the count to reach
 * zero. Nothing here knows a protocol: each listener carries its handler.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <gio/gio.h>

#include "log.h"
#include "net.h"

/* A boot storm connects hundreds of machines at once, faster than the one
 * accept thread may get the CPU: ask for the largest backlog; the kernel
 * caps it at net.core.somaxconn (4096 by default), so an admin can tune it
 * there. A fixed 128 made later SYNs wait for a retransmit (1 s, then 3 s). */
#define NET_LISTEN_BACKLOG 65535

struct net_listener {
    struct net_server *srv;
    int fd;
    char *proto;
    char *bound;
    net_conn_fn fn;
    void *user_data;
    GThread *thread;
};

struct net_server {
    GPtrArray *listeners; /* struct net_listener * */
    GMutex lock;
    GCond idle;
    unsigned active;
    int stopping;
};

struct net_conn {
    struct net_listener *listener;
    int fd;
    char *peer;
};

static void
net_listener_free(struct net_listener *l)
{
    if (l->fd >= 0)
        close(l->fd);
    g_free(l->proto);
    g_free(l->bound);
    g_free(l);
}

struct net_server *
net_server_new(void)
{
    struct net_server *srv = g_new0(struct net_server, 1);

    srv->listeners = g_ptr_array_new_with_free_func((GDestroyNotify)net_listener_free);
    g_mutex_init(&srv->lock);
    g_cond_init(&srv->idle);
    return srv;
}

void
net_server_free(struct net_server *srv)
{
    if (srv == NULL)
        return;
    net_server_stop_accepting(srv);
    g_ptr_array_unref(srv->listeners);
    g_mutex_clear(&srv->lock);
    g_cond_clear(&srv->idle);
    g_free(srv);
}

char *
net_format_sockaddr(const void *sa, unsigned salen)
{
    char host[INET6_ADDRSTRLEN] = "";
    char port[16] = "";
    const struct sockaddr *s = sa;

    if (getnameinfo(s, salen, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return g_strdup("?");
    if (s->sa_family == AF_INET6)
        return g_strdup_printf("[%s]:%s", host, port);
    return g_strdup_printf("%s:%s", host, port);
}

static int
net_bind_one(const struct addrinfo *ai, GError **error)
{
    int one = 1;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);

    if (fd < 0) {
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "socket: %s",
                    g_strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* An IPv6 wildcard listens on IPv6 only, so "::" and "0.0.0.0" can both be
     * configured without a clash. */
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, NET_LISTEN_BACKLOG) < 0) {
        int err = errno;
        g_autofree char *addr = net_format_sockaddr(ai->ai_addr, ai->ai_addrlen);
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err), "cannot listen on %s: %s", addr,
                    g_strerror(err));
        close(fd);
        return -1;
    }
    return fd;
}

static void
net_add_listener(struct net_server *srv, int fd, const char *proto, net_conn_fn fn, void *user_data,
                 char **bound_out)
{
    struct net_listener *nl = g_new0(struct net_listener, 1);
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);

    nl->srv = srv;
    nl->fd = fd;
    nl->proto = g_strdup(proto);
    nl->fn = fn;
    nl->user_data = user_data;
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0)
        nl->bound = net_format_sockaddr(&ss, sslen);
    else
        nl->bound = g_strdup("?");
    g_ptr_array_add(srv->listeners, nl);
    g_message("%s: listening on %s", proto, nl->bound);
    if (bound_out != NULL)
        *bound_out = g_strdup(nl->bound);
}

bool
net_server_adopt(struct net_server *srv, int fd, const char *proto, net_conn_fn fn, void *user_data,
                 char **bound_out, GError **error)
{
    int type = 0, listening = 0;
    socklen_t len = sizeof(type);

    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM ||
        (len = sizeof(listening), getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len)) <
            0 ||
        !listening) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "%s: file descriptor %d is not a listening stream socket", proto, fd);
        return false;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    net_add_listener(srv, fd, proto, fn, user_data, bound_out);
    return true;
}

bool
net_server_listen(struct net_server *srv, const struct cfg_listen *l, const char *proto,
                  net_conn_fn fn, void *user_data, char **bound_out, GError **error)
{
    struct addrinfo hints = {0};
    struct addrinfo *res = NULL;
    char port[8];
    int rc, fd;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    g_snprintf(port, sizeof(port), "%u", (unsigned)l->port);
    rc = getaddrinfo(l->host[0] != '\0' ? l->host : NULL, port, &hints, &res);
    if (rc != 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s listener '%s': %s", proto, l->host,
                    gai_strerror(rc));
        return false;
    }
    /* The first address that resolves; for the wildcard AI_PASSIVE lists IPv4
     * first on Debian's gai.conf, which is what "any" means to most admins. */
    fd = net_bind_one(res, error);
    freeaddrinfo(res);
    if (fd < 0) {
        g_prefix_error(error, "%s: ", proto);
        return false;
    }
    net_add_listener(srv, fd, proto, fn, user_data, bound_out);
    return true;
}

char *
net_server_describe(struct net_server *srv)
{
    GString *s = g_string_new(NULL);

    for (guint i = 0; i < srv->listeners->len; i++) {
        struct net_listener *l = g_ptr_array_index(srv->listeners, i);
        g_string_append_printf(s, "%s %s\n", l->proto, l->bound);
    }
    return g_string_free(s, FALSE);
}

static gpointer
net_conn_thread(gpointer data)
{
    struct net_conn *c = data;
    struct net_server *srv = c->listener->srv;

    g_debug("%s: connection from %s", c->listener->proto, c->peer);
    c->listener->fn(c->listener->user_data, c->fd, c->peer);
    g_debug("%s: connection from %s ended", c->listener->proto, c->peer);
    g_free(c->peer);
    g_free(c);
    g_mutex_lock(&srv->lock);
    if (--srv->active == 0)
        g_cond_broadcast(&srv->idle);
    g_mutex_unlock(&srv->lock);
    return NULL;
}

static void
net_spawn_conn(struct net_listener *l, int fd, const struct sockaddr_storage *ss, socklen_t sslen)
{
    struct net_server *srv = l->srv;
    struct net_conn *c = g_new0(struct net_conn, 1);
    g_autoptr(GError) err = NULL;
    GThread *t;
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->listener = l;
    c->fd = fd;
    c->peer = net_format_sockaddr(ss, sslen);
    g_mutex_lock(&srv->lock);
    srv->active++;
    g_mutex_unlock(&srv->lock);
    t = g_thread_try_new("ovgate-conn", net_conn_thread, c, &err);
    if (t == NULL) {
        g_warning("%s: cannot start a thread for %s: %s", l->proto, c->peer, err->message);
        close(fd);
        g_free(c->peer);
        g_free(c);
        g_mutex_lock(&srv->lock);
        if (--srv->active == 0)
            g_cond_broadcast(&srv->idle);
        g_mutex_unlock(&srv->lock);
        return;
    }
    g_thread_unref(t); /* detached: it counts itself out */
}

static gpointer
net_accept_thread(gpointer data)
{
    struct net_listener *l = data;

    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof(ss);
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sslen, SOCK_CLOEXEC);

        if (g_atomic_int_get(&l->srv->stopping)) {
            if (fd >= 0)
                close(fd);
            return NULL;
        }
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            /* EMFILE/ENFILE/ENOBUFS: back off instead of spinning. */
            LOG_RATELIMITED(G_LOG_LEVEL_WARNING, 10, 3, "%s: accept: %s", l->proto,
                            g_strerror(errno));
            g_usleep(100 * 1000);
            continue;
        }
        net_spawn_conn(l, fd, &ss, sslen);
    }
}

bool
net_server_start(struct net_server *srv, GError **error)
{
    for (guint i = 0; i < srv->listeners->len; i++) {
        struct net_listener *l = g_ptr_array_index(srv->listeners, i);
        l->thread = g_thread_try_new("ovgate-accept", net_accept_thread, l, error);
        if (l->thread == NULL)
            return false;
    }
    return true;
}

void
net_server_stop_accepting(struct net_server *srv)
{
    g_atomic_int_set(&srv->stopping, 1);
    for (guint i = 0; i < srv->listeners->len; i++) {
        struct net_listener *l = g_ptr_array_index(srv->listeners, i);
        if (l->fd >= 0)
            shutdown(l->fd, SHUT_RDWR);
        if (l->thread != NULL)
            g_thread_join(g_steal_pointer(&l->thread));
        if (l->fd >= 0) {
            close(l->fd);
            l->fd = -1;
        }
    }
}

unsigned
net_server_get_active(struct net_server *srv)
{
    unsigned n;

    g_mutex_lock(&srv->lock);
    n = srv->active;
    g_mutex_unlock(&srv->lock);
    return n;
}

bool
net_server_wait_idle(struct net_server *srv, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    bool idle;

    g_mutex_lock(&srv->lock);
    while (srv->active > 0)
        if (!g_cond_wait_until(&srv->idle, &srv->lock, deadline))
            break;
    idle = srv->active == 0;
    g_mutex_unlock(&srv->lock);
    return idle;
}

bool
net_write_file_atomic(const char *path, const char *text, GError **error)
{
    /* g_file_set_contents writes a temporary file, fsyncs it and renames it
     * over path, so readers see the old file or the complete new one. */
    return g_file_set_contents(path, text, -1, error);
}

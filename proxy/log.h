/* log.h — logging conventions for ovgated.
 *
 * Modules log with GLib (g_message / g_warning / g_debug) under their own
 * G_LOG_DOMAIN ("ovgate-iscsi", ...), set per library in meson.build. Client
 * bytes never reach g_error / g_critical / g_assert: those are for our own
 * invariants. Errors that a misbehaving client can trigger repeatedly are
 * logged through LOG_RATELIMITED so a broken peer cannot flood the journal.
 */
#pragma once

#include <glib.h>

/* At most `burst` messages per `interval_s` seconds from this call site. */
#define LOG_RATELIMITED(level, interval_s, burst, ...)                                         \
    do {                                                                                       \
        static gint log_rl_window_;                                                            \
        static gint log_rl_count_;                                                             \
        gint log_rl_now_ = (gint)(g_get_monotonic_time() / G_USEC_PER_SEC);                    \
        gint log_rl_old_ = g_atomic_int_get(&log_rl_window_);                                  \
        if (log_rl_now_ - log_rl_old_ >= (interval_s) &&                                       \
            g_atomic_int_compare_and_exchange(&log_rl_window_, log_rl_old_, log_rl_now_))      \
            g_atomic_int_set(&log_rl_count_, 0);                                               \
        if (g_atomic_int_add(&log_rl_count_, 1) < (burst))                                     \
            g_log(G_LOG_DOMAIN, (level), __VA_ARGS__);                                         \
    } while (0)

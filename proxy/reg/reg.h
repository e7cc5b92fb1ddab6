/* reg.h — the daemon's client registry: who may log in, which disk each
 * session gets, and who is attached right now. Driven at run time by the
 * front ends (login / export lookup), by the control socket (status, reset,
 * commit, end sessions) and by store changes (ovctl edits while we run:
 * the registry re-reads the store on lookup and watches it, so a removed
 * client's sessions end).
 *
 * Disks: the first attach of a client opens its overlay (exclusive lock) and
 * builds one struct view and one struct sdev_lu; later attaches of the same
 * client (more connections, more initiator names of one client) share them.
 * The last detach closes them (final flush, lock released).
 *
 * Threading: all functions are thread-safe (one registry mutex, never held
 * during I/O or while calling a kick callback). Kick callbacks run on the
 * calling thread and must only start ending the session (e.g. shutdown() its
 * socket); the session detaches itself when it unwinds.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "cfg.h"
#include "store.h"
#include "view.h"
#include "sdev.h"

#define REG_ERROR (reg_error_quark())
GQuark reg_error_quark(void);
enum reg_error_code {
    REG_ERROR_UNKNOWN_TARGET,    /* no such image / export */
    REG_ERROR_UNKNOWN_INITIATOR, /* not registered, and no auto-enrolment */
    REG_ERROR_BUSY,              /* the disk has a writer the policy does not replace */
    REG_ERROR_FAILED,            /* store / overlay error (message says which) */
};
/* REG_ERROR_FAILED is a server-side failure (out of file descriptors or
 * memory, EIO, a damaged store file, a lock timeout): the name looked up may
 * well exist, so front ends must answer it as a transient target error, never
 * as "no such target / export" or "not a client". Lookups log it at warning
 * level (rate-limited). */
/* True for a REG_ERROR_FAILED caused by a shortage of resources (EMFILE,
 * ENFILE, ENOMEM, ENOBUFS): iSCSI answers it with Out of resources. */
bool reg_error_is_out_of_resources(const GError *error);

struct reg;
struct reg_attach;

/* Opens nothing yet; takes a reference to cfg. Caller frees with reg_free
 * (which kicks and waits for nothing: call after the front ends stopped). */
struct reg *reg_new(struct ov_store *store, struct cfg *cfg);
void reg_free(struct reg *reg);
/* Swap in a reloaded configuration (SIGHUP). */
void reg_set_cfg(struct reg *reg, struct cfg *cfg);
/* A new reference to the current configuration; caller cfg_unrefs. */
struct cfg *reg_get_cfg(struct reg *reg);
struct ov_store *reg_get_store(struct reg *reg); /* borrowed */

/* iSCSI target name for an image: "<iqn-prefix>:<image>". Caller frees. */
char *reg_target_name(struct reg *reg, const char *image);
/* Image name from a target name, or NULL if not ours / no such image. Caller frees. */
char *reg_image_from_target(struct reg *reg, const char *target_name);
/* The same, saying why not: REG_ERROR_UNKNOWN_TARGET (not ours, no such
 * image) or REG_ERROR_FAILED (the store could not be read). Caller frees. */
char *reg_image_from_target_full(struct reg *reg, const char *target_name, GError **error);
/* Names of all images, for SendTargets / NBD_OPT_LIST. Caller frees (g_strfreev). */
char **reg_list_images(struct reg *reg);

/* Resolve an iSCSI initiator logging in to image: the registered client with
 * that IQN (it must be a client of that image), or, if the image allows
 * auto-enrolment, a client created for it now (named after the IQN). Returns
 * the client name (caller frees) or NULL with REG_ERROR_UNKNOWN_INITIATOR /
 * REG_ERROR_UNKNOWN_TARGET, or REG_ERROR_FAILED when the store could not be
 * read (then nothing is enrolled). */
char *reg_resolve_initiator(struct reg *reg, const char *image, const char *initiator_name,
                            GError **error);
/* May this initiator log in to image? Side-effect free (nothing is enrolled):
 * true when the IQN belongs to a client of that image, or when no client has
 * the IQN and the image allows auto-enrolment. For SendTargets filtering. */
bool reg_initiator_may_access(struct reg *reg, const char *image, const char *initiator_name);
/* Per-client CHAP settings from the config (NULL if none). Borrowed from a
 * cfg reference the caller holds: use reg_get_cfg + cfg_get_client. */

/* Called by the registry to end a session (client removed, reset --force,
 * shutdown). Must not block; must not call back into the registry. */
typedef void (*reg_kick_fn)(void *user_data, const char *reason);

enum reg_protocol { REG_PROTO_ISCSI, REG_PROTO_NBD };

struct reg_attach_params {
    enum reg_protocol protocol;
    const char *peer;      /* "127.0.0.1:51234" */
    const char *initiator; /* IQN or NBD export name, for status */
    reg_kick_fn kick;
    void *kick_data;
};

/* Attach a session to a client's read-write disk (opening it if this is the
 * first). Caller releases with reg_detach. */
struct reg_attach *reg_attach_client(struct reg *reg, const char *client,
                                     const struct reg_attach_params *params, GError **error);
/* Attach to a read-only view of the image's head generation (NBD export IMAGE). */
struct reg_attach *reg_attach_image(struct reg *reg, const char *image,
                                    const struct reg_attach_params *params, GError **error);
void reg_detach(struct reg_attach *attach); /* accepts NULL */
struct view *reg_attach_get_view(struct reg_attach *attach);     /* borrowed */
struct sdev_lu *reg_attach_get_lu(struct reg_attach *attach);    /* borrowed; image views too */
const char *reg_attach_get_client(struct reg_attach *attach);    /* NULL for image views */

/* Kick every session of client; returns how many were kicked. With wait,
 * blocks until they all detached and the disk is closed (timeout_ms). */
int reg_kick_client(struct reg *reg, const char *client, const char *reason, bool wait,
                    int timeout_ms);
/* Online reset / commit of a client while attached: freeze the view, run the
 * store operation with the open overlay, swap in the new overlay, raise a unit
 * attention, thaw. Works when nobody is attached too. */
bool reg_reset_client(struct reg *reg, const char *client, GError **error);
/* Reset only if no session is attached (or in the middle of attaching):
 * otherwise REG_ERROR_BUSY. The check and the reset are one step under the
 * registry lock, so a login that races the reset is either refused nothing
 * (it attaches after the reset) or makes the reset fail. */
bool reg_reset_client_idle(struct reg *reg, const char *client, GError **error);
bool reg_commit_client(struct reg *reg, const char *client, uint32_t *new_generation,
                       GError **error);
/* Re-read the store: end sessions of clients that no longer exist. */
void reg_rescan(struct reg *reg);

/* Status snapshot for ovctl status (control socket). Array of
 * struct reg_session_status *, caller frees with g_ptr_array_unref. */
struct reg_session_status {
    char *client; /* NULL for image views */
    char *image;
    uint32_t generation;
    enum reg_protocol protocol;
    char *peer;
    char *initiator;
    gint64 since; /* unix seconds */
    struct view_stats stats;
};
GPtrArray *reg_get_status(struct reg *reg);

/* lu.c — logical units, I_T nexuses and task management (SAM-5 §7).
 *
 * An LU is one client disk shared by every nexus of that client; it owns the
 * reservation, unit attention and mode page state (all under lu->lock). A
 * nexus holds a reference to its LU and is listed in lu->nexuses so that unit
 * attentions can be delivered to every initiator port.
 */
#include "sdev-int.h"

/* Copy an INQUIRY ASCII field: printable ASCII only, space padded to width
 * (SPC-4 §4.4.1). */
static void
sdev_ascii_field(char *dst, size_t width, const char *src, const char *fallback)
{
    const char *s = (src && *src) ? src : fallback;
    size_t i = 0;

    for (; i < width && s[i]; i++)
        dst[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '_';
    for (; i < width; i++)
        dst[i] = ' ';
    dst[width] = '\0';
}

static void
sdev_default_revision(char out[5])
{
    char rev[5] = "";
    size_t n = 0;

    /* "0.1.0" -> "0.1": the field is 4 characters; drop a dangling dot. */
    for (const char *p = OVGATE_VERSION; *p && n < 4; p++)
        rev[n++] = *p;
    while (n > 0 && rev[n - 1] == '.')
        n--;
    rev[n] = '\0';
    sdev_ascii_field(out, 4, rev, "0");
}

struct sdev_lu *
sdev_lu_new(struct view *view, const struct sdev_lu_params *params)
{
    struct sdev_lu *lu = g_new0(struct sdev_lu, 1);
    struct sdev_lu_params none = {0};
    const struct sdev_lu_params *p = params ? params : &none;

    g_atomic_int_set(&lu->refcount, 1);
    lu->view = view_ref(view);
    lu->block_size = 512;
    if (p->block_size == 4096)
        lu->block_size = 4096;
    else if (p->block_size != 0 && p->block_size != 512)
        g_warning("unsupported logical block size %u, using 512", p->block_size);
    lu->block_shift = (uint32_t)g_bit_nth_lsf(lu->block_size, -1);

    sdev_ascii_field(lu->vendor, 8, p->vendor, "OVGATE");
    sdev_ascii_field(lu->product, 16, p->product, "ovgate disk");
    if (p->revision && *p->revision)
        sdev_ascii_field(lu->revision, 4, p->revision, "0");
    else
        sdev_default_revision(lu->revision);

    view_get_disk_id(view, lu->disk_id);
    if (p->serial && *p->serial) {
        lu->serial = g_strdup(p->serial);
        for (char *c = lu->serial; *c; c++) {
            if (*c < 0x20 || *c >= 0x7f)
                *c = '_';
        }
    } else {
        lu->serial = g_malloc(33);
        for (int i = 0; i < 16; i++)
            g_snprintf(lu->serial + 2 * i, 3, "%02x", lu->disk_id[i]);
    }

    pthread_mutex_init(&lu->lock, NULL);
    lu->nexuses = g_ptr_array_new();
    lu->registrants = g_ptr_array_new();
    lu->wce = true;
    lu->d_sense = false;
    return lu;
}

struct sdev_lu *
sdev_lu_ref(struct sdev_lu *lu)
{
    g_atomic_int_inc(&lu->refcount);
    return lu;
}

void
sdev_lu_unref(struct sdev_lu *lu)
{
    if (!lu || !g_atomic_int_dec_and_test(&lu->refcount))
        return;
    /* Every nexus holds a reference, so none is left here. */
    g_ptr_array_free(lu->nexuses, TRUE);
    sdev_pr_free_all(lu);
    g_ptr_array_free(lu->registrants, TRUE);
    pthread_mutex_destroy(&lu->lock);
    view_unref(lu->view);
    g_free(lu->serial);
    g_free(lu);
}

struct view *
sdev_lu_get_view(struct sdev_lu *lu)
{
    return lu->view;
}

uint64_t
sdev_lu_nblocks(struct sdev_lu *lu)
{
    return view_get_size(lu->view) >> lu->block_shift;
}

bool
sdev_lu_desc_sense(struct sdev_lu *lu)
{
    sdev_lu_lock(lu);
    bool d = lu->d_sense;
    sdev_lu_unlock(lu);
    return d;
}

struct sdev_nexus *
sdev_nexus_new(struct sdev_lu *lu, const char *initiator_port, const char *target_port,
               uint16_t rel_target_port_id)
{
    struct sdev_nexus *n = g_new0(struct sdev_nexus, 1);

    n->lu = sdev_lu_ref(lu);
    n->initiator_port = g_strdup(initiator_port ? initiator_port : "");
    n->target_port = g_strdup(target_port);
    n->rel_tpid = rel_target_port_id;
    /* SAM-5 §5.14: a new I_T nexus starts with POWER ON, RESET, OR BUS DEVICE
     * RESET OCCURRED pending. */
    sdev_ua_raise_locked(n, SDEV_ASC_RESET, SDEV_ASCQ_POWER_ON_RESET);
    sdev_lu_lock(lu);
    g_ptr_array_add(lu->nexuses, n);
    sdev_lu_unlock(lu);
    return n;
}

void
sdev_nexus_free(struct sdev_nexus *nexus)
{
    if (!nexus)
        return;
    struct sdev_lu *lu = nexus->lu;
    sdev_lu_lock(lu);
    /* I_T nexus loss releases an SPC-2 reservation; persistent reservations
     * and registrations survive (SPC-4 §5.13.1). */
    sdev_pr_nexus_gone_locked(lu, nexus);
    g_ptr_array_remove_fast(lu->nexuses, nexus);
    sdev_lu_unlock(lu);
    g_free(nexus->initiator_port);
    g_free(nexus->target_port);
    g_free(nexus);
    sdev_lu_unref(lu);
}

struct sdev_lu *
sdev_nexus_get_lu(struct sdev_nexus *nexus)
{
    return nexus->lu;
}

/* SAM-5 §5.11 / SPC-4 §7.5: a reset returns mode parameters to their saved
 * values; we save none, so that is the default. */
static void
sdev_lu_reset_locked(struct sdev_lu *lu, uint8_t ascq)
{
    lu->wce = true;
    lu->d_sense = false;
    lu->swp = false;
    if (lu->spc2_holder)
        lu->spc2_holder = NULL;
    sdev_ua_raise_all_locked(lu, NULL, SDEV_ASC_RESET, ascq);
}

int
sdev_tmf(struct sdev_nexus *nexus, enum sdev_tmf fn)
{
    struct sdev_lu *lu = nexus->lu;

    switch (fn) {
    case SDEV_TMF_ABORT_TASK_SET:
    case SDEV_TMF_CLEAR_TASK_SET:
    case SDEV_TMF_CLEAR_ACA:
        /* Commands run to completion inside sdev; nothing is queued here to
         * abort or clear, and NACA is not supported so no ACA exists. */
        return 0;
    case SDEV_TMF_LUN_RESET:
    case SDEV_TMF_TARGET_WARM_RESET:
        sdev_lu_lock(lu);
        sdev_lu_reset_locked(lu, SDEV_ASCQ_DEVICE_RESET);
        sdev_lu_unlock(lu);
        return 0;
    case SDEV_TMF_TARGET_COLD_RESET:
        sdev_lu_lock(lu);
        sdev_lu_reset_locked(lu, SDEV_ASCQ_POWER_ON);
        sdev_lu_unlock(lu);
        return 0;
    }
    return 5; /* task management function not supported */
}

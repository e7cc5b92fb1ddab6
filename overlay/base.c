/* base.c — the common half of the base-source interface (ov-base.h):
 * initialisation, reference counting, identity and the dispatching wrappers.
 * Implementations live in proxy/base/. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <glib.h>

#include "ov-base.h"

void
ov_base_init(struct ov_base *base, const struct ov_base_ops *ops, uint64_t size, int fd,
             const char *description)
{
    base->ops = ops;
    base->size = size;
    base->fd = fd;
    base->description = g_strdup(description ? description : ops->name);
    base->refcount = 1;
    base->has_id = false;
    memset(&base->id, 0, sizeof(base->id));
    base->map = NULL;
    base->map_failed = false;
}

void
ov_base_set_id(struct ov_base *base, const struct ov_base_id *id)
{
    base->id = *id;
    base->id.image[OV_IMAGE_NAME_MAX] = '\0';
    base->has_id = true;
}

struct ov_base *
ov_base_ref(struct ov_base *base)
{
    __atomic_add_fetch(&base->refcount, 1, __ATOMIC_RELAXED);
    return base;
}

void
ov_base_unref(struct ov_base *base)
{
    char *description;

    if (!base)
        return;
    if (__atomic_sub_fetch(&base->refcount, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    if (base->map != NULL)
        munmap(base->map, (size_t)base->size);
    /* destroy frees the struct; the description is ours to free. */
    description = base->description;
    base->ops->destroy(base);
    g_free(description);
}

const uint8_t *
ov_base_map(struct ov_base *base)
{
    void *p = __atomic_load_n(&base->map, __ATOMIC_ACQUIRE);
    void *expected = NULL;

    if (p != NULL)
        return p;
    if (base->fd < 0 || base->size == 0 || base->size > SIZE_MAX ||
        __atomic_load_n(&base->map_failed, __ATOMIC_RELAXED))
        return NULL;
    p = mmap(NULL, (size_t)base->size, PROT_READ, MAP_SHARED, base->fd, 0);
    if (p == MAP_FAILED) {
        __atomic_store_n(&base->map_failed, true, __ATOMIC_RELAXED);
        return NULL;
    }
    /* Two first users may race: one mapping wins, the other is dropped. */
    if (!__atomic_compare_exchange_n(&base->map, &expected, p, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        munmap(p, (size_t)base->size);
        return expected;
    }
    return p;
}

int
ov_base_pread(struct ov_base *base, void *buf, size_t len, uint64_t offset)
{
    if (offset > base->size || len > base->size - offset)
        return -EINVAL;
    if (len == 0)
        return 0;
    return base->ops->pread(base, buf, len, offset);
}

int
ov_base_block_status(struct ov_base *base, uint64_t offset, uint64_t length, ov_base_extent_fn fn,
                     void *user_data)
{
    if (offset > base->size || length > base->size - offset)
        return -EINVAL;
    if (length == 0)
        return 0;
    if (!base->ops->block_status) {
        fn(offset, length, OV_BASE_DATA, user_data);
        return 0;
    }
    return base->ops->block_status(base, offset, length, fn, user_data);
}

/* base.h — base sources: the golden image generations behind overlays.
 *
 * Each function returns a new struct ov_base (ov-base.h) with refcount 1, or
 * NULL with a GError (G_FILE_ERROR for local files). The caller releases it
 * with ov_base_unref. Only file bases exist so far; NBD/iSCSI upstreams and
 * the shared read cache will join them here.
 */
#pragma once

#include <glib.h>

#include "ov-base.h"

/* A local raw image file or block device, opened O_RDONLY. The base's fd is
 * that descriptor, so the overlay library and commit can pread or clone it
 * directly; every client reading it shares the file's page cache. Extents
 * come from SEEK_DATA/SEEK_HOLE; prefetch is posix_fadvise(WILLNEED). */
struct ov_base *base_file_open(const char *path, GError **error);

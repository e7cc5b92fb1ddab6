/* fixture.h — shared helpers of the store's unit tests (fixture.c). */
#pragma once

#include <stdint.h>
#include <stddef.h>
#include <glib.h>

#include "store.h"

#define MiB (1024u * 1024u)

struct fixture {
    char *dir;       /* temporary directory of the test, removed afterwards */
    char *store_dir; /* dir/store */
    struct ov_store *store;
};

/* g_test_add setup/teardown: a new store with the file base opener. */
void fixture_setup(struct fixture *f, gconstpointer data);
void fixture_teardown(struct fixture *f, gconstpointer data);
struct ov_base *file_opener(const struct ov_image_info *image, const struct ov_generation_info *gen,
                            void *user_data, GError **error);
void rm_rf(const char *path);
/* Checksums (caller frees): a file; a client's merged disk (base + overlay). */
char *sha256_file(const char *path);
char *sha256_client(struct fixture *f, const char *client);
/* Write byte over [off, off+len) / zero a range of a client's disk. */
void client_write(struct fixture *f, const char *client, uint64_t off, size_t len, int byte);
void client_zero(struct fixture *f, const char *client, uint64_t off, uint64_t len);
void overlay_info(struct fixture *f, const char *client, struct ov_overlay_info *oi);
/* dir/name: 1 MiB of pattern, then a hole up to size bytes (caller frees). */
char *make_raw(struct fixture *f, const char *name, uint64_t size);
unsigned count_entries(const char *dir);
/* Entries in STORE/tmp. */
unsigned count_tmp(struct fixture *f);

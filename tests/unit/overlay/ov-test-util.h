/* ov-test-util.h — helpers shared by the overlay unit, crash and fuzz tests. */
#pragma once

#include <stdint.h>
#include <glib.h>

#include "base.h"
#include "ov-int.h"

/* A scratch directory under $TMPDIR, removed (with its files) by
 * ovt_tmpdir_free. */
char *ovt_tmpdir_new(void);
void ovt_tmpdir_free(char *dir);

/* Write a base image of size bytes with pseudo-random content (seeded) and
 * return its path (caller frees). */
char *ovt_make_base(const char *dir, const char *name, uint64_t size, guint32 seed);

/* Base identity for a base file of size bytes, image "lab" generation gen. */
void ovt_base_id(struct ov_base_id *id, uint64_t size, uint32_t gen);

/* Open path as a file base and tag it with ovt_base_id(size, gen). */
struct ov_base *ovt_open_base(const char *path, uint32_t gen);

/* A sparse all-zero base file of size bytes. */
char *ovt_make_sparse_base(const char *dir, const char *name, uint64_t size);
/* Create an overlay for ovt_base_id(size, gen) at dir/name. */
char *ovt_make_overlay(const char *dir, const char *name, uint64_t size, uint32_t gen,
                       uint32_t granule);

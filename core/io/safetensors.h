/* Core-internal side of the safetensors reader/writer (the public API is graft/weights.h).
 *
 * The writer is split in two so that checkpoints can be written from host memory without a
 * compute context (tests, converters, the bench's synthetic checkpoints): a tensor is
 * described by its name, dtype, shape and a callback (or pointer) producing its bytes. */
#ifndef GRAFT_CORE_IO_SAFETENSORS_H
#define GRAFT_CORE_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "graft/status.h"
#include "graft/tensor.h"
#include "graft/weights.h"

/* Largest header accepted (the safetensors spec limit). */
#define GR_SAFETENSORS_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

typedef struct gr_st_entry {
    const char *name;
    gr_dtype dtype;
    int ndim;
    int64_t shape[GR_MAX_DIMS];
    /* Either `data` (nbytes of host memory) or `fill` (writes nbytes into dst). */
    const void *data;
    gr_status (*fill)(void *user, int index, void *dst, size_t nbytes);
    void *user;
} gr_st_entry;

/* The tensor `name` of w checked against an expected shape (ndim < 0: any). Missing tensor or
 * wrong shape: NULL with a one-line message naming the tensor, the file and both shapes. */
const gr_weight_info *gr_weights_expect(const struct gr_weights *w, const char *name, int ndim,
                                        const int64_t *shape);

/* Writes entries to `path` atomically: a temporary file next to it, fsync, rename. The header
 * is padded with spaces to a multiple of 8 bytes so every tensor starts 8-byte aligned.
 * metadata: NULL-terminated key, value, ... list (may be NULL). */
gr_status gr_st_write_entries(const char *path, const gr_st_entry *entries, int count,
                              const char *const *metadata);

#endif

/* graft — reading model weights (safetensors, single file or sharded) and writing them.
 *
 * A gr_weights is an opened checkpoint: every tensor's name, dtype, shape and a pointer into
 * the mmap'd file. Weights stay in their stored dtype; operations convert on use, so a model
 * that fits in memory as BF16 but not as F32 still runs. */
#ifndef GRAFT_WEIGHTS_H
#define GRAFT_WEIGHTS_H

#include "graft/ops.h"
#include "graft/status.h"
#include "graft/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gr_weights gr_weights;

typedef struct gr_weight_info {
    const char *name;
    gr_dtype dtype;
    int ndim;
    int64_t shape[GR_MAX_DIMS];
    const void *data;   /* inside the mapping; valid until gr_weights_close */
    size_t nbytes;
    const char *file;   /* the shard file it came from */
} gr_weight_info;

/* Opens PATH: a .safetensors file, or a directory holding model.safetensors or
 * model.safetensors.index.json (sharded). Strict: the header must lie within the file and be
 * <= 100 MB of valid JSON with UTF-8 names, offsets in range, dtype x shape = byte length, no
 * two tensors overlapping. Errors name the file and the tensor. */
gr_status gr_weights_open(const char *path, gr_weights **out);
void gr_weights_close(gr_weights *w);
int gr_weights_count(const gr_weights *w);
const gr_weight_info *gr_weights_at(const gr_weights *w, int i);
/* NULL if absent (no error set). */
const gr_weight_info *gr_weights_find(const gr_weights *w, const char *name);
/* The `__metadata__` string value for key, or NULL. */
const char *gr_weights_metadata(const gr_weights *w, const char *key);

/* A persistent frozen parameter from the checkpoint: the tensor `prefix` + `name` (prefix
 * NULL or "" for none, e.g. "language_model." inside a BLIP-2 file), checked against the
 * expected shape (ndim dims; ndim < 0 accepts any shape) and stored as F32, F16 or BF16. The
 * parameter is named `name`, without the prefix: the HF name a model's params() reports
 * (model.h). Zero-copy from the mapping where the backend allows and the data is aligned,
 * else an uploaded copy. A missing tensor (GR_ERR_NOT_FOUND), a wrong shape (GR_ERR_SHAPE)
 * or dtype (GR_ERR_UNSUPPORTED) is a one-line error naming the file and the full tensor name;
 * it leaves the ctx usable (only a backend failure marks it failed). *out is NULL then. */
gr_status gr_weights_param(gr_ctx *ctx, const gr_weights *w, const char *prefix, const char *name,
                           int ndim, const int64_t *shape, gr_tensor **out);

/* Writes tensors (any dtype; downloaded from the backend) to a safetensors file atomically
 * (temporary file, fsync, rename). names[i] overrides tensors[i]->name when non-NULL.
 * metadata: NULL-terminated key, value, key, value... list (may be NULL). */
gr_status gr_safetensors_write(gr_ctx *ctx, const char *path, gr_tensor *const *tensors,
                               const char *const *names, int count,
                               const char *const *metadata);

#ifdef __cplusplus
}
#endif
#endif

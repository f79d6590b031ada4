/* The parts of weights.h that touch a compute context: parameters straight from a mapped
 * checkpoint, and writing backend tensors to a safetensors file. */
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "graft/weights.h"
#include "io/safetensors.h"

gr_status gr_weights_param(gr_ctx *ctx, const gr_weights *w, const char *prefix, const char *name, int ndim,
                           const int64_t *shape, gr_tensor **out)
{
    *out = NULL;
    if (gr_ctx_status(ctx)) return gr_ctx_status(ctx);
    char stack[512], *full = stack;
    size_t n = strlen(prefix ? prefix : "") + strlen(name) + 1;
    if (n > sizeof stack && !(full = malloc(n))) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", name);
    snprintf(full, n, "%s%s", prefix ? prefix : "", name);
    gr_status s = GR_OK;
    const gr_weight_info *info = gr_weights_expect(w, full, ndim, shape);
    if (!info) {
        const gr_weight_info *found = gr_weights_find(w, full);
        s = !found ? GR_ERR_NOT_FOUND : found->dtype == GR_DTYPE_COUNT ? GR_ERR_UNSUPPORTED : GR_ERR_SHAPE;
    } else if (info->dtype != GR_F32 && info->dtype != GR_F16 && info->dtype != GR_BF16) {
        s = gr_fail(GR_ERR_UNSUPPORTED, "%s: tensor '%s' is stored as %s; a parameter is F32, F16 or BF16",
                    info->file, full, gr_dtype_name(info->dtype));
    } else if ((uintptr_t)info->data % gr_dtype_size(info->dtype) == 0) {
        /* Zero-copy when the mapping is aligned for the dtype (the writer guarantees it;
         * other writers usually do); otherwise an uploaded copy. */
        *out = gr_param_from_host(ctx, name, info->dtype, info->ndim, info->shape, info->data);
    } else {
        *out = gr_param_new(ctx, name, info->dtype, info->ndim, info->shape);
        if (*out && gr_upload(ctx, *out, info->data) != GR_OK) {
            gr_tensor_free(ctx, *out);
            *out = NULL;
        }
    }
    if (s == GR_OK && !*out) {
        s = gr_ctx_status(ctx) ? gr_ctx_status(ctx) : GR_ERR_BACKEND;
        gr_fail_context(s, "%s: loading '%s'", info->file, full);
    }
    if (full != stack) free(full);
    return s;
}

typedef struct write_ctx {
    gr_ctx *ctx;
    gr_tensor *const *tensors;
} write_ctx;

static gr_status fill(void *user, int index, void *dst, size_t nbytes)
{
    write_ctx *wc = user;
    (void)nbytes;
    return gr_to_host(wc->ctx, wc->tensors[index], dst);
}

gr_status gr_safetensors_write(gr_ctx *ctx, const char *path, gr_tensor *const *tensors, const char *const *names,
                               int count, const char *const *metadata)
{
    gr_st_entry *e = calloc((size_t)count + 1, sizeof *e);
    if (!e) return gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
    write_ctx wc = {ctx, tensors};
    for (int i = 0; i < count; i++) {
        const gr_tensor *t = tensors[i];
        e[i].name = (names && names[i]) ? names[i] : t->name;
        if (!e[i].name) {
            free(e);
            return gr_fail(GR_ERR_INVALID, "%s: tensor %d has no name", path, i);
        }
        e[i].dtype = t->dtype;
        e[i].ndim = t->ndim;
        memcpy(e[i].shape, t->shape, sizeof e[i].shape);
        e[i].fill = fill;
        e[i].user = &wc;
    }
    gr_status s = gr_st_write_entries(path, e, count, metadata);
    free(e);
    return s;
}

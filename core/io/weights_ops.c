/* The parts of weights.h that touch a compute context: parameters straight from a mapped
 * checkpoint, and writing backend tensors to a safetensors file. */
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "graft/weights.h"
#include "io/safetensors.h"

gr_tensor *gr_weights_param(gr_ctx *ctx, const gr_weights *w, const char *name, int ndim, const int64_t *shape)
{
    if (gr_ctx_status(ctx)) return NULL;
    const gr_weight_info *info = gr_weights_expect(w, name, ndim, shape);
    if (!info) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", gr_last_error());
        gr_ctx_fail(ctx, GR_ERR_NOT_FOUND, "%s", msg);
        return NULL;
    }
    /* Zero-copy when the mapping is aligned for the dtype (the writer guarantees it; other
     * writers usually do); otherwise an uploaded copy. */
    if ((uintptr_t)info->data % gr_dtype_size(info->dtype) == 0)
        return gr_param_from_host(ctx, name, info->dtype, info->ndim, info->shape, info->data);
    gr_tensor *t = gr_param_new(ctx, name, info->dtype, info->ndim, info->shape);
    if (t && gr_upload(ctx, t, info->data) != GR_OK) {
        gr_tensor_free(ctx, t);
        return NULL;
    }
    return t;
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

/* The Vulkan backend plugin: lifecycle and the interface table. With debug_check set, each
 * kernel goes through vk_check.c (host recomputation and comparison) instead. */
#include <stdlib.h>

#include "graft/plugin.h"
#include "vk_internal.h"

gr_status vk_cache_dir_init(vk_ctx *c, const char *want);

static void vk_destroy(void *bctx)
{
    vk_ctx *c = bctx;
    if (!c) return;
    if (c->dev) {
        vk_synchronize(c);
        vkDeviceWaitIdle(c->dev);
    }
    vk_frames_destroy(c);
    vk_pipelines_destroy(c);
    vk_memory_destroy(c);
    vk_device_destroy(c);
}

static gr_status vk_create(const gr_backend_options *opt, void **bctx)
{
    vk_ctx *c;
    gr_status s = vk_device_create(opt, &c);
    if (s != GR_OK) return s;
    const char *cache = opt && opt->struct_size >= offsetof(gr_backend_options, cache_dir) + sizeof(char *)
                            ? opt->cache_dir : NULL;
    if ((s = vk_cache_dir_init(c, cache)) == GR_OK && (s = vk_memory_init(c)) == GR_OK &&
        (s = vk_frames_init(c)) == GR_OK && (s = vk_pipelines_init(c)) == GR_OK) {
        *bctx = c;
        return GR_OK;
    }
    vk_destroy(c);
    return s;
}

#define CHECKED(name, params, args)                                                   \
    static gr_status k_##name params                                                    \
    {                                                                                   \
        return ((vk_ctx *)bctx)->debug_check ? vk_checked_iface.name args : vk_##name args; \
    }

CHECKED(fill, (void *bctx, const gr_tensor *t, float v), (bctx, t, v))
CHECKED(matmul, (void *bctx, const gr_matmul_args *a), (bctx, a))
CHECKED(binary, (void *bctx, gr_binary_op op, const gr_tensor *o, const gr_tensor *a, const gr_tensor *b),
        (bctx, op, o, a, b))
CHECKED(scale, (void *bctx, const gr_tensor *o, const gr_tensor *i, float al, int acc), (bctx, o, i, al, acc))
CHECKED(reduce_to, (void *bctx, const gr_tensor *o, const gr_tensor *i), (bctx, o, i))
CHECKED(sum_squares, (void *bctx, const gr_tensor *o, const gr_tensor *i), (bctx, o, i))
CHECKED(unary, (void *bctx, gr_unary_op op, const gr_tensor *o, const gr_tensor *i), (bctx, op, o, i))
CHECKED(unary_backward, (void *bctx, gr_unary_op op, const gr_tensor *dx, const gr_tensor *x, const gr_tensor *dy),
        (bctx, op, dx, x, dy))
CHECKED(gather_rows, (void *bctx, const gr_tensor *o, const gr_tensor *t, const gr_tensor *ids), (bctx, o, t, ids))
CHECKED(scatter_add_rows, (void *bctx, const gr_tensor *dt, const gr_tensor *ids, const gr_tensor *d, int32_t skip),
        (bctx, dt, ids, d, skip))
CHECKED(layernorm,
        (void *bctx, const gr_tensor *o, const gr_tensor *m, const gr_tensor *r, const gr_tensor *x,
         const gr_tensor *w, const gr_tensor *b, float eps),
        (bctx, o, m, r, x, w, b, eps))
CHECKED(layernorm_backward,
        (void *bctx, const gr_tensor *dx, const gr_tensor *dw, const gr_tensor *db, const gr_tensor *dy,
         const gr_tensor *x, const gr_tensor *w, const gr_tensor *m, const gr_tensor *r),
        (bctx, dx, dw, db, dy, x, w, m, r))
CHECKED(rmsnorm, (void *bctx, const gr_tensor *o, const gr_tensor *r, const gr_tensor *x, const gr_tensor *w, float eps),
        (bctx, o, r, x, w, eps))
CHECKED(rmsnorm_backward,
        (void *bctx, const gr_tensor *dx, const gr_tensor *dw, const gr_tensor *dy, const gr_tensor *x,
         const gr_tensor *w, const gr_tensor *r),
        (bctx, dx, dw, dy, x, w, r))
CHECKED(softmax, (void *bctx, const gr_tensor *o, const gr_tensor *i), (bctx, o, i))
CHECKED(softmax_backward, (void *bctx, const gr_tensor *dx, const gr_tensor *y, const gr_tensor *dy), (bctx, dx, y, dy))
CHECKED(rope,
        (void *bctx, const gr_tensor *o, const gr_tensor *x, const gr_tensor *c, const gr_tensor *s, int rot, int inv),
        (bctx, o, x, c, s, rot, inv))
CHECKED(copy_strided, (void *bctx, const gr_copy_args *a), (bctx, a))
CHECKED(convert, (void *bctx, const gr_tensor *o, const gr_tensor *i), (bctx, o, i))
CHECKED(cross_entropy, (void *bctx, const gr_tensor *l, const gr_tensor *x, const gr_tensor *y, int32_t ig),
        (bctx, l, x, y, ig))
CHECKED(cross_entropy_backward,
        (void *bctx, const gr_tensor *d, const gr_tensor *x, const gr_tensor *y, int32_t ig, float sc),
        (bctx, d, x, y, ig, sc))
CHECKED(adamw, (void *bctx, const gr_adamw_args *a), (bctx, a))

static const gr_backend_iface vk_iface = {
    .struct_size = sizeof(gr_backend_iface),
    .create = vk_create,
    .destroy = vk_destroy,
    .describe = vk_describe,
    .buffer_alloc = vk_buffer_alloc,
    .buffer_free = vk_buffer_free,
    .upload = vk_upload,
    .download = vk_download,
    .copy = vk_copy,
    .synchronize = vk_synchronize,
    .fill = k_fill,
    .matmul = k_matmul,
    .binary = k_binary,
    .scale = k_scale,
    .reduce_to = k_reduce_to,
    .sum_squares = k_sum_squares,
    .unary = k_unary,
    .unary_backward = k_unary_backward,
    .gather_rows = k_gather_rows,
    .scatter_add_rows = k_scatter_add_rows,
    .layernorm = k_layernorm,
    .layernorm_backward = k_layernorm_backward,
    .rmsnorm = k_rmsnorm,
    .rmsnorm_backward = k_rmsnorm_backward,
    .softmax = k_softmax,
    .softmax_backward = k_softmax_backward,
    .rope = k_rope,
    .copy_strided = k_copy_strided,
    .convert = k_convert,
    .cross_entropy = k_cross_entropy,
    .cross_entropy_backward = k_cross_entropy_backward,
    .adamw = k_adamw,
    .buffer_host_ptr = NULL, /* device memory is not host memory in general */
    .buffer_wrap_host = NULL,
    .max_buffer_size = vk_max_buffer_size,
};

static const gr_plugin_descriptor vk_descriptor =
    GR_PLUGIN_DESCRIPTOR(GR_PLUGIN_BACKEND, "vulkan", "Vulkan compute (any GPU vendor; lavapipe on the CPU)", &vk_iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &vk_descriptor; }

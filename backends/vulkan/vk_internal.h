/* Vulkan backend internals shared by its files (not part of the SDK).
 *
 * Structure:
 *   vk_device.c   instance/device selection, feature probes, describe()
 *   vk_memory.c   block suballocator, buffers, staging uploads/downloads, deferred frees
 *   vk_shader.c   shaderc compilation, on-disk SPIR-V cache, pipelines, VkPipelineCache
 *   vk_dispatch.c command batches ("frames"), descriptor pools, hazard-tracked barriers,
 *                 windowed bindings (maxStorageBufferRange) and the row-chunked runner
 *   vk_kernels.c  every kernel of backend.h except matmul; vk_matmul.c the tiled matmul
 *   vk_ref.c      host reference of every kernel (debug_check and tests)
 *   vk_check.c    debug_check: recompute each op on the host, report the first divergence
 *   vk_plugin.c   the iface table and plugin descriptor */
#ifndef GRAFT_VK_INTERNAL_H
#define GRAFT_VK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <vulkan/vulkan.h>

#include "graft/backend.h"

#define VK_FRAMES 2            /* command batches in flight */
#define VK_MAX_BINDINGS 6      /* storage buffers per dispatch */
#define VK_PUSH_WORDS 32       /* 128 bytes: the minimum every device guarantees */
#define VK_BATCH_DISPATCHES 512 /* dispatches recorded before a batch is submitted */

typedef struct vk_embedded_shader {
    const char *name;
    const char *text;
    size_t len;
} vk_embedded_shader;
extern const vk_embedded_shader vk_embedded_shaders[];

typedef struct vk_range { VkDeviceSize off, size; } vk_range;

typedef struct vk_block {
    VkDeviceMemory mem;
    VkBuffer buf;
    uint8_t *map;          /* persistently mapped when host-visible, else NULL */
    VkDeviceSize size, used;
    int host;              /* allocated from the host (staging) memory type */
    int dedicated;         /* one allocation: freed when its buffer is */
    vk_range *free;        /* sorted, coalesced free ranges */
    int nfree, capfree;
    struct vk_block *next;
} vk_block;

struct gr_buffer {
    vk_block *block;
    VkDeviceSize off, size;
    uint64_t id;           /* for hazard tracking */
};

typedef struct vk_pipeline {
    char *key;
    VkPipeline pipe;
    VkPipelineLayout layout;
    VkDescriptorSetLayout dsl;
    int nbind;
    uint32_t texel_mask;   /* bit i: binding i is an RGBA32F uniform texel buffer */
    uint32_t local_size;   /* workgroup size (x) */
} vk_pipeline;

/* A binding: a byte window [lo, hi) of a buffer, bound at an aligned offset. */
typedef struct vk_bind {
    gr_buffer *buf;
    VkDeviceSize lo, hi;
    int write;
} vk_bind;

/* A descriptor-set layout for bindings that are not all storage buffers. */
typedef struct vk_layout {
    int nbind;
    uint32_t texel_mask;
    VkDescriptorSetLayout dsl;
    VkPipelineLayout layout;
} vk_layout;
#define VK_MAX_LAYOUTS 8

typedef struct vk_span { uint64_t id; VkDeviceSize lo, hi; } vk_span;

typedef struct vk_frame {
    VkCommandBuffer cmd;
    VkFence fence;
    int recording, submitted;
    int ndispatch;
    VkDescriptorPool *pools;
    int npools, cur_pool;
    vk_block *staging;     /* host-visible upload ring for this batch */
    VkDeviceSize staging_used;
    gr_buffer **deferred;  /* temporaries freed when the batch completes */
    int ndeferred, capdeferred;
    VkBufferView *views;   /* texel-buffer views of this batch's dispatches */
    int nviews, capviews;
} vk_frame;

typedef struct vk_features {
    int fp16_storage, int8_storage, fp16_arith, fp64, int64, subgroup_size;
    int coopmat_ext;       /* VK_KHR_cooperative_matrix advertised (not used: see docs) */
    int subgroup_shuffle;  /* subgroup shuffles in compute shaders */
    int texel_rgba32f;     /* RGBA32F uniform texel buffers (the subgroup matmul reads through them) */
    int cpu;               /* the device is a CPU (lavapipe, SwiftShader): per-invocation loads are dear */
} vk_features;

typedef struct vk_ctx {
    VkInstance inst;
    VkPhysicalDevice pdev;
    VkDevice dev;
    VkQueue queue;
    uint32_t qfam;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties memprops;
    vk_features feat;
    char devices_desc[1024];  /* every device found, for describe() */
    int device_index;

    /* memory */
    uint32_t dev_type, host_type;   /* memory type indices */
    int dev_is_host;                /* device-local memory is host-visible (UMA, lavapipe) */
    VkDeviceSize block_size, align, max_alloc;
    VkDeviceSize max_range;         /* usable bytes per binding (limit, env override) */
    vk_block *blocks;
    uint64_t next_buffer_id;
    size_t bytes_in_use, peak_bytes;

    /* command batches */
    VkCommandPool cmdpool;
    vk_frame frames[VK_FRAMES];
    int cur;
    vk_span *reads, *writes;        /* accessed since the last barrier */
    int nreads, nwrites, capreads, capwrites;
    uint64_t barriers, dispatches, submits;
    uint64_t mm_subgroup, mm_tiled;  /* matmul calls per kernel (describe) */

    /* pipelines */
    VkDescriptorSetLayout dsl[VK_MAX_BINDINGS + 1];
    VkPipelineLayout layout[VK_MAX_BINDINGS + 1];
    vk_layout layouts[VK_MAX_LAYOUTS];
    int nlayouts;
    VkPipelineCache pcache;
    vk_pipeline **pipes;
    int npipes, cappipes;
    char *cache_dir;
    char *shader_dir;               /* GRAFT_VULKAN_SHADER_DIR override, or NULL */
    int shaders_compiled, shaders_cached;
    void *compiler;                 /* shaderc_compiler_t, created on first compilation */

    /* device-side error reports (ids/labels out of range): 8 uints, host-visible */
    gr_buffer *errbuf;

    int verbose, debug_check;
    int defer_index_checks;         /* GRAFT_VULKAN_DEFER_INDEX_CHECKS: report bad ids at the next sync */
} vk_ctx;

/* ---- vk_device.c ---- */
gr_status vk_device_create(const gr_backend_options *opt, vk_ctx **out);
void vk_device_destroy(vk_ctx *c);
gr_status vk_describe(void *bctx, char *buf, size_t cap);
const char *vk_result_str(VkResult r);

/* ---- vk_memory.c ---- */
gr_status vk_memory_init(vk_ctx *c);
void vk_memory_destroy(vk_ctx *c);
gr_status vk_buffer_alloc_kind(vk_ctx *c, size_t bytes, int host, gr_buffer **out);
gr_status vk_buffer_alloc(void *bctx, size_t bytes, gr_buffer **out);
void vk_buffer_free(void *bctx, gr_buffer *buf);
/* Frees `buf` when the current batch has completed (for temporaries used by queued work). */
gr_status vk_buffer_free_later(vk_ctx *c, gr_buffer *buf);
gr_status vk_upload(void *bctx, gr_buffer *dst, size_t offset, const void *src, size_t bytes);
gr_status vk_download(void *bctx, gr_buffer *src, size_t offset, void *dst, size_t bytes);
gr_status vk_copy(void *bctx, gr_buffer *dst, size_t dst_offset, gr_buffer *src,
                  size_t src_offset, size_t bytes);
size_t vk_max_buffer_size(void *bctx);

/* ---- vk_shader.c ---- */
/* The pipeline of shader `name` compiled with `defines` ("A=1 B" space-separated) and the
 * specialization constants spec[0..nspec) (constant_id 0 is the workgroup size). */
gr_status vk_pipeline_get(vk_ctx *c, const char *name, const char *defines, const uint32_t *spec,
                          int nspec, int nbind, vk_pipeline **out);
/* The same with bindings whose bit is set in texel_mask bound as RGBA32F uniform texel buffers
 * (their vk_bind window must then be 16-byte sized and aligned to minTexelBufferOffsetAlignment). */
gr_status vk_pipeline_get_texel(vk_ctx *c, const char *name, const char *defines, const uint32_t *spec,
                                int nspec, int nbind, uint32_t texel_mask, vk_pipeline **out);
gr_status vk_pipelines_init(vk_ctx *c);
gr_status vk_cache_dir_init(vk_ctx *c, const char *want);
void vk_pipelines_destroy(vk_ctx *c);

/* ---- vk_dispatch.c ---- */
gr_status vk_frames_init(vk_ctx *c);
void vk_frames_destroy(vk_ctx *c);
/* The command buffer being recorded (begins one if needed). */
gr_status vk_cmd(vk_ctx *c, VkCommandBuffer *cmd);
/* Records a barrier when the accesses (read or written byte spans) conflict with earlier ones
 * since the last barrier. Transfers and dispatches both go through it. */
void vk_hazard(vk_ctx *c, VkCommandBuffer cmd, const vk_bind *binds, int n);
gr_status vk_dispatch3(vk_ctx *c, vk_pipeline *p, const vk_bind *binds, int nbind, const uint32_t *push,
                       int npush, uint32_t gx, uint32_t gy, uint32_t gz);
gr_status vk_dispatch(vk_ctx *c, vk_pipeline *p, const vk_bind *binds, int nbind,
                      const uint32_t *push, int npush, uint32_t groups);
/* Submits the batch being recorded (does not wait). */
gr_status vk_submit(vk_ctx *c);
/* Submits and waits for all work, then checks the device-side error reports. */
gr_status vk_synchronize(void *bctx);
/* Staging space in the current batch: a host pointer and its buffer/offset, or NULL when
 * `bytes` does not fit (caller then synchronizes or splits). */
void *vk_staging(vk_ctx *c, VkDeviceSize bytes, gr_buffer *view);

/* Windows: the usable bytes per binding, and a binding for bytes [lo, hi) of tensor t's buffer
 * (relative to t->offset); *base receives the first element's index inside the binding, in
 * units of `esize` bytes. */
VkDeviceSize vk_budget(const vk_ctx *c);
gr_status vk_window(vk_ctx *c, const gr_tensor *t, VkDeviceSize lo, VkDeviceSize hi, size_t esize,
                    int write, vk_bind *bind, uint32_t *base);

/* The row-chunked runner most kernels use. Every tensor argument is either split by rows
 * (row_elems elements per row) or bound whole (row_elems == 0). Push words 0..5 receive the
 * bases of the arguments, word 6 the rows in this chunk, word 7 the first row; kernel
 * parameters start at word 8. groups_per_row (>0): workgroups per row; or elems_per_row
 * (>0): one invocation per element of each row. */
typedef struct vk_rowjob {
    const char *kernel;
    vk_pipeline *pipe;
    int nargs;
    const gr_tensor *t[VK_MAX_BINDINGS];
    int64_t row_elems[VK_MAX_BINDINGS];
    int write[VK_MAX_BINDINGS];
    int64_t rows;
    uint32_t push[VK_PUSH_WORDS];
    int npush;
    int64_t elems_per_row;
    uint32_t groups_per_row;
} vk_rowjob;
gr_status vk_run_rows(vk_ctx *c, vk_rowjob *job);

/* Error-report codes written by shaders into errbuf[0]. */
enum { VK_ERR_GATHER_ID = 1, VK_ERR_SCATTER_ID = 2, VK_ERR_CE_LABEL = 3, VK_ERR_CE_BWD_LABEL = 4 };

/* ---- kernels (vk_kernels.c, vk_matmul.c) ---- */
gr_status vk_fill(void *bctx, const gr_tensor *t, float value);
gr_status vk_matmul(void *bctx, const gr_matmul_args *a);
gr_status vk_binary(void *bctx, gr_binary_op op, const gr_tensor *out, const gr_tensor *a,
                    const gr_tensor *b);
gr_status vk_scale(void *bctx, const gr_tensor *out, const gr_tensor *in, float alpha, int acc);
gr_status vk_reduce_to(void *bctx, const gr_tensor *out, const gr_tensor *in);
gr_status vk_sum_squares(void *bctx, const gr_tensor *out, const gr_tensor *in);
gr_status vk_unary(void *bctx, gr_unary_op op, const gr_tensor *out, const gr_tensor *in);
gr_status vk_unary_backward(void *bctx, gr_unary_op op, const gr_tensor *dx, const gr_tensor *x,
                            const gr_tensor *dy);
gr_status vk_gather_rows(void *bctx, const gr_tensor *out, const gr_tensor *table,
                         const gr_tensor *ids);
gr_status vk_scatter_add_rows(void *bctx, const gr_tensor *dtable, const gr_tensor *ids,
                              const gr_tensor *dout, int32_t skip_id);
gr_status vk_layernorm(void *bctx, const gr_tensor *out, const gr_tensor *mean,
                       const gr_tensor *rstd, const gr_tensor *x, const gr_tensor *w,
                       const gr_tensor *b, float eps);
gr_status vk_layernorm_backward(void *bctx, const gr_tensor *dx, const gr_tensor *dw,
                                const gr_tensor *db, const gr_tensor *dy, const gr_tensor *x,
                                const gr_tensor *w, const gr_tensor *mean, const gr_tensor *rstd);
gr_status vk_rmsnorm(void *bctx, const gr_tensor *out, const gr_tensor *rstd, const gr_tensor *x,
                     const gr_tensor *w, float eps);
gr_status vk_rmsnorm_backward(void *bctx, const gr_tensor *dx, const gr_tensor *dw,
                              const gr_tensor *dy, const gr_tensor *x, const gr_tensor *w,
                              const gr_tensor *rstd);
gr_status vk_softmax(void *bctx, const gr_tensor *out, const gr_tensor *in);
gr_status vk_softmax_backward(void *bctx, const gr_tensor *dx, const gr_tensor *y,
                              const gr_tensor *dy);
gr_status vk_rope(void *bctx, const gr_tensor *out, const gr_tensor *x, const gr_tensor *cos,
                  const gr_tensor *sin, int rot_dim, int inverse);
gr_status vk_copy_strided(void *bctx, const gr_copy_args *a);
gr_status vk_convert(void *bctx, const gr_tensor *out, const gr_tensor *in);
gr_status vk_cross_entropy(void *bctx, const gr_tensor *loss, const gr_tensor *logits,
                           const gr_tensor *labels, int32_t ignore_index);
gr_status vk_cross_entropy_backward(void *bctx, const gr_tensor *dlogits, const gr_tensor *logits,
                                    const gr_tensor *labels, int32_t ignore_index, float scale);
gr_status vk_adamw(void *bctx, const gr_adamw_args *a);

/* ---- vk_ref.c: host reference kernels ----
 * The same iface over host memory: a "host buffer" is plain memory, tensors address it with
 * buffer = (gr_buffer *)ptr. Used by debug_check and the tests. */
extern const gr_backend_iface vk_ref_iface;

/* ---- vk_check.c ---- */
extern const gr_backend_iface vk_checked_iface;

#endif

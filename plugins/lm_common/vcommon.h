/* Helpers shared by the vision-side plugins (clip-vit, blip2-vit, qformer, linear, mlp):
 * reading HF config keys with HF's defaults (messages scoped as "vision_config.key") and
 * loading or randomly initialising parameters with HF's vision inits. Attention, the ABI
 * fill and the rest come from lm_common.h, which every model plugin shares.
 *
 * Part of graft_lm_common, linked statically into each plugin. */
#ifndef GRAFT_PLUGINS_VCOMMON_H
#define GRAFT_PLUGINS_VCOMMON_H

#include <jansson.h>

#include "graft/model.h"
#include "lm_common.h"

/* A config object and how to name its keys in messages: "PATH: SCOPE.key: ...". */
typedef struct vc_cfg {
    const json_t *obj;      /* may be NULL: every key takes its default */
    const char *path;       /* file (for messages) */
    const char *scope;      /* "" or "vision_config." */
} vc_cfg;

/* Integer key >= min (absent or null: def). */
gr_status vc_int(const vc_cfg *c, const char *key, int64_t def, int64_t min, int64_t *out);
/* Number key > 0 (absent or null: def). */
gr_status vc_pos_num(const vc_cfg *c, const char *key, double def, double *out);
gr_status vc_bool(const vc_cfg *c, const char *key, int def, int *out);
/* String key (absent or null: def). */
gr_status vc_str(const vc_cfg *c, const char *key, const char *def, const char **out);
/* HF ACT2FN name -> kernel; unknown names are an error naming the key. */
gr_status vc_act(const vc_cfg *c, const char *key, const char *def, gr_unary_op *out);
/* Fails naming the key (for values the plugin does not implement). */
gr_status vc_bad(const vc_cfg *c, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The sub-object `key` of c (NULL if absent), scoped for messages into `sub` (scope_buf holds
 * the new scope). A present non-object is an error. */
gr_status vc_sub(const vc_cfg *c, const char *key, vc_cfg *sub, char *scope_buf, size_t cap);

/* A module's parameters, in creation order, named as in its HF state dict (relative to the
 * source prefix). */
typedef struct vc_params {
    gr_tensor **items;
    int count, cap;
    gr_status status; /* the first failure of vc_param (GR_OK while none) */
} vc_params;

typedef enum vc_init {
    VC_NORMAL = 0,      /* N(0, std) */
    VC_TRUNC_NORMAL,    /* N(0, std) truncated to [-2, 2] (torch trunc_normal_ defaults) */
    VC_ZEROS,
    VC_ONES
} vc_init;

/* Loads `name` (prefix + name in src->weights, checked against shape) or, without weights,
 * creates it as F32 initialised by `init`. The tensor is named `name` and appended to ps.
 * NULL with a one-line error naming the tensor (and the ctx failed) on failure. */
gr_tensor *vc_param(gr_ctx *ctx, const gr_model_source *src, vc_params *ps, const char *name,
                    int ndim, const int64_t *shape, vc_init init, double std);
/* Like vc_param for an optional tensor: NULL without error when the checkpoint lacks it. */
gr_tensor *vc_param_opt(gr_ctx *ctx, const gr_model_source *src, vc_params *ps,
                        const char *name, int ndim, const int64_t *shape);
/* True when prefix + name exists in src->weights. */
int vc_has(const gr_model_source *src, const char *name);
void vc_params_free(gr_ctx *ctx, vc_params *ps);

/* t as F32 (converted, recording a node, when stored as F16/BF16). */
gr_tensor *vc_f32(gr_ctx *ctx, gr_tensor *t);

/* Deterministic N(0, 1) samples for parameter `name` under `seed`: the stream depends only on
 * (seed, name), so adding a parameter never changes the others. */
void vc_randn(uint64_t seed, const char *name, float *out, int64_t n, double std, int truncate);

#endif

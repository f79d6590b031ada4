/* The "spy" language-model plugin (see spy_lm.h). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "graft/model.h"
#include "graft/plugin.h"
#include "plugin/registry.h"
#include "spy_lm.h"

static spy_record record;

GR_PLUGIN_EXPORT spy_record *spy_lm_record(void) { return &record; }

typedef struct spy { const gr_lm_iface *inner; gr_lm *m; } spy;
#define S(lm) ((spy *)(lm))

static gr_status spy_open(gr_ctx *ctx, const gr_model_source *src, gr_lm **out)
{
    const char *family = json_string_value(json_object_get((json_t *)src->config, "model_type"));
    if (!family) return gr_fail(GR_ERR_FORMAT, "%s: spy: no model_type", src->config_path ? src->config_path : "config");
    const void *iface;
    gr_status s = gr_plugin_iface(GR_PLUGIN_LANGUAGE_MODEL, family, &iface);
    if (s != GR_OK) return s;
    spy *w = calloc(1, sizeof *w);
    if (!w) return gr_fail(GR_ERR_NOMEM, "spy: out of memory");
    w->inner = iface;
    if ((s = w->inner->open(ctx, src, &w->m)) != GR_OK) { free(w); return s; }
    *out = (gr_lm *)w;
    return GR_OK;
}

static void spy_close(gr_lm *lm, gr_ctx *ctx) { S(lm)->inner->close(S(lm)->m, ctx); free(lm); }
static void spy_info(const gr_lm *lm, gr_lm_info *out) { ((const spy *)lm)->inner->info(((const spy *)lm)->m, out); }
static void spy_params(gr_lm *lm, gr_param_list *out) { S(lm)->inner->params(S(lm)->m, out); }
static gr_tensor *spy_embeddings(gr_lm *lm) { return S(lm)->inner->input_embeddings(S(lm)->m); }
static gr_status spy_set_layers(gr_lm *lm, const int *layers, int count) { return S(lm)->inner->set_layers(S(lm)->m, layers, count); }

static void copy_ints(int32_t *dst, const int32_t *src, int64_t n, int *has)
{
    *has = src != NULL && n <= SPY_MAX_INTS;
    if (*has) memcpy(dst, src, sizeof(int32_t) * (size_t)n);
}

static gr_status spy_forward(gr_lm *lm, gr_ctx *ctx, const gr_lm_inputs *in, gr_lm_outputs *out)
{
    record.forwards++;
    record.batch = in->batch;
    record.seq = in->seq;
    record.label_len = in->label_len;
    copy_ints(record.ids, in->ids, in->batch * in->seq, &record.has_ids);
    copy_ints(record.mask, in->mask, in->batch * in->seq, &record.has_mask);
    copy_ints(record.labels, in->labels, in->batch * (in->label_len ? in->label_len : in->seq), &record.has_labels);
    memset(record.prefix_shape, 0, sizeof record.prefix_shape);
    if (in->prefix && in->prefix->ndim == 3 && gr_numel(in->prefix) <= SPY_MAX_FLOATS) {
        memcpy(record.prefix_shape, in->prefix->shape, sizeof record.prefix_shape);
        gr_status s = gr_to_host_f32(ctx, in->prefix, record.prefix);
        if (s != GR_OK) return s;
    }
    return S(lm)->inner->forward(S(lm)->m, ctx, in, out);
}

static gr_status spy_begin(gr_lm *lm, gr_ctx *ctx, const gr_lm_inputs *p, gr_lm_cache **c, gr_tensor **logits)
{
    return S(lm)->inner->generate_begin(S(lm)->m, ctx, p, c, logits);
}
static gr_status spy_step(gr_lm *lm, gr_ctx *ctx, gr_lm_cache *c, const int32_t *next, gr_tensor **logits)
{
    return S(lm)->inner->generate_step(S(lm)->m, ctx, c, next, logits);
}
static gr_status spy_reorder(gr_lm *lm, gr_ctx *ctx, gr_lm_cache *c, const int32_t *rows, int64_t n)
{
    return S(lm)->inner->cache_reorder(S(lm)->m, ctx, c, rows, n);
}
static void spy_cache_free(gr_lm *lm, gr_ctx *ctx, gr_lm_cache *c) { S(lm)->inner->cache_free(S(lm)->m, ctx, c); }

static const gr_lm_iface iface = {
    .struct_size = sizeof(gr_lm_iface),
    .open = spy_open, .close = spy_close, .info = spy_info, .params = spy_params,
    .input_embeddings = spy_embeddings, .forward = spy_forward, .set_layers = spy_set_layers,
    .generate_begin = spy_begin, .generate_step = spy_step, .cache_reorder = spy_reorder,
    .cache_free = spy_cache_free,
};

static const gr_plugin_descriptor desc =
    GR_PLUGIN_DESCRIPTOR(GR_PLUGIN_LANGUAGE_MODEL, "spy", "test only: records the inputs of forward()", &iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &desc; }

/* Vision-language model assembled from plugins (see vlm.h). */
#include "vlm/vlm.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "plugin/registry.h"

typedef struct vlm_param {
    char *name;
    gr_tensor *t;
} vlm_param;

struct gr_vlm {
    const gr_vision_iface *vision_if, *qformer_if;
    const gr_projector_iface *proj_if;
    const gr_lm_iface *lm_if;
    gr_vision *vision, *qformer;
    gr_projector *proj;
    gr_lm *lm;
    char *names[4];                 /* plugin names */
    vlm_param *params;
    int nparams;
    json_t *owned_config;           /* gr_vlm_open_dir */
    gr_weights *owned_weights;
    gr_vlm_info info;
};

static char *dup_str(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Checks the interface size a plugin reports covers every slot this file calls. */
static gr_status find_iface(gr_plugin_kind kind, const char *name, size_t need, const void **out)
{
    gr_status st = gr_plugin_iface(kind, name, out);
    if (st) return st;
    if (*(const uint32_t *)*out < need)
        return gr_fail(GR_ERR_ABI, "%s plugin '%s': interface too small (%u < %zu bytes)",
                       gr_plugin_kind_name(kind), name, *(const uint32_t *)*out, need);
    return GR_OK;
}

static gr_status add_params(gr_vlm *m, gr_tensor **items, int count, const char *prefix,
                            const char *ensure)
{
    vlm_param *p = realloc(m->params, (size_t)(m->nparams + count) * sizeof *p);
    if (!p && m->nparams + count) return gr_fail(GR_ERR_NOMEM, "out of memory (parameter names)");
    m->params = p;
    for (int i = 0; i < count; i++) {
        const char *n = items[i]->name ? items[i]->name : "?";
        /* ensure: a part-local prefix the full name must carry (a bare Blip2VisionModel file
         * names its tensors embeddings.*; inside the VLM they are vision_model.*). */
        const char *e = ensure && strncmp(n, ensure, strlen(ensure)) != 0 ? ensure : "";
        size_t len = strlen(prefix) + strlen(e) + strlen(n) + 1;
        char *full = malloc(len);
        if (!full) return gr_fail(GR_ERR_NOMEM, "out of memory (parameter names)");
        snprintf(full, len, "%s%s%s", prefix, e, n);
        m->params[m->nparams].name = full;
        m->params[m->nparams].t = items[i];
        m->nparams++;
    }
    return GR_OK;
}

void gr_vlm_close(gr_vlm *m, gr_ctx *ctx)
{
    if (!m) return;
    if (m->lm) m->lm_if->close(m->lm, ctx);
    if (m->proj) m->proj_if->close(m->proj, ctx);
    if (m->qformer) m->qformer_if->close(m->qformer, ctx);
    if (m->vision) m->vision_if->close(m->vision, ctx);
    for (int i = 0; i < m->nparams; i++) free(m->params[i].name);
    free(m->params);
    for (int i = 0; i < 4; i++) free(m->names[i]);
    if (m->owned_weights) gr_weights_close(m->owned_weights);
    if (m->owned_config) json_decref(m->owned_config);
    free(m);
}

gr_status gr_vlm_open_parts(gr_ctx *ctx, const gr_vlm_parts *parts, gr_vlm **out)
{
    *out = NULL;
    if (!parts || parts->struct_size < sizeof *parts)
        return gr_fail(GR_ERR_INVALID, "vlm: parts description missing or too small");
    if (!parts->vision.plugin || !parts->projector.plugin || !parts->lm.plugin)
        return gr_fail(GR_ERR_INVALID, "vlm: a vision encoder, a projector and a language model "
                       "are required");
    gr_vlm *m = calloc(1, sizeof *m);
    if (!m) return gr_fail(GR_ERR_NOMEM, "out of memory (vlm)");
    gr_vlm_info *I = &m->info;
    I->struct_size = sizeof *I;
    gr_status st;
    const void *iface;

    /* Encoder. */
    if ((st = find_iface(GR_PLUGIN_VISION_ENCODER, parts->vision.plugin, sizeof(gr_vision_iface), &iface)))
        goto fail;
    m->vision_if = iface;
    m->names[0] = dup_str(parts->vision.plugin);
    if ((st = m->vision_if->open(ctx, &parts->vision.src, &m->vision))) goto fail;
    I->vision.struct_size = sizeof I->vision; /* the plugin writes no more than this */
    m->vision_if->info(m->vision, &I->vision);
    int64_t feat_dim = I->vision.hidden_size;
    I->prompt_len = I->vision.num_tokens;

    /* Q-Former: consumes the encoder's features. */
    if (parts->qformer.plugin) {
        if ((st = find_iface(GR_PLUGIN_VISION_ENCODER, parts->qformer.plugin, sizeof(gr_vision_iface),
                             &iface)))
            goto fail;
        m->qformer_if = iface;
        m->names[1] = dup_str(parts->qformer.plugin);
        if ((st = m->qformer_if->open(ctx, &parts->qformer.src, &m->qformer))) goto fail;
        I->qformer.struct_size = sizeof I->qformer;
        m->qformer_if->info(m->qformer, &I->qformer);
        I->has_qformer = 1;
        if (I->qformer.input_dim != feat_dim) {
            st = gr_fail(GR_ERR_SHAPE, "%s: Q-Former encoder_hidden_size %lld does not match the "
                         "vision hidden_size %lld", parts->qformer.src.config_path
                         ? parts->qformer.src.config_path : "vlm",
                         (long long)I->qformer.input_dim, (long long)feat_dim);
            goto fail;
        }
        feat_dim = I->qformer.hidden_size;
        I->prompt_len = I->qformer.num_tokens;
    }

    /* Language model. */
    if ((st = find_iface(GR_PLUGIN_LANGUAGE_MODEL, parts->lm.plugin, sizeof(gr_lm_iface), &iface)))
        goto fail;
    m->lm_if = iface;
    m->names[3] = dup_str(parts->lm.plugin);
    if ((st = m->lm_if->open(ctx, &parts->lm.src, &m->lm))) goto fail;
    I->lm.struct_size = sizeof I->lm;
    m->lm_if->info(m->lm, &I->lm);
    I->prompt_dim = I->lm.embed_dim;

    /* Projector: features -> the LM's embedding width. */
    gr_projector_spec spec = parts->projector_spec;
    spec.struct_size = sizeof spec;
    if (!spec.in_dim) spec.in_dim = feat_dim;
    if (!spec.out_dim) spec.out_dim = I->lm.embed_dim;
    if (spec.in_dim != feat_dim || spec.out_dim != I->lm.embed_dim) {
        st = gr_fail(GR_ERR_SHAPE, "vlm: projector spec %lld -> %lld does not connect features of "
                     "width %lld to LM embeddings of width %lld", (long long)spec.in_dim,
                     (long long)spec.out_dim, (long long)feat_dim, (long long)I->lm.embed_dim);
        goto fail;
    }
    if ((st = find_iface(GR_PLUGIN_PROJECTOR, parts->projector.plugin, sizeof(gr_projector_iface),
                         &iface)))
        goto fail;
    m->proj_if = iface;
    m->names[2] = dup_str(parts->projector.plugin);
    if ((st = m->proj_if->open(ctx, &parts->projector.src, &spec, &m->proj))) goto fail;
    I->vision_plugin = m->names[0];
    I->qformer_plugin = m->names[1];
    I->projector_plugin = m->names[2];
    I->lm_plugin = m->names[3];

    gr_param_list pl;
    m->vision_if->params(m->vision, &pl);
    if ((st = add_params(m, pl.items, pl.count, "", "vision_model."))) goto fail;
    if (m->qformer) {
        m->qformer_if->params(m->qformer, &pl);
        if ((st = add_params(m, pl.items, pl.count, "", NULL))) goto fail;
    }
    m->proj_if->params(m->proj, &pl);
    if ((st = add_params(m, pl.items, pl.count, "language_projection.", NULL))) goto fail;
    m->lm_if->params(m->lm, &pl);
    if ((st = add_params(m, pl.items, pl.count, "language_model.", NULL))) goto fail;
    *out = m;
    return GR_OK;
fail:
    gr_vlm_close(m, ctx);
    return st ? st : GR_ERR_INVALID;
}

/* Plugin names for a BLIP-2 config's towers and language models. */
static const char *vision_plugin_for(const char *model_type)
{
    if (strcmp(model_type, "blip_2_vision_model") == 0) return "blip2-vit";
    if (strcmp(model_type, "clip_vision_model") == 0) return "clip-vit";
    return NULL;
}

static const char *lm_plugin_for(const char *model_type)
{
    static const char *const known[] = {"opt", "t5", "llama"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(model_type, known[i]) == 0) return known[i];
    return NULL;
}

static const char *json_str_or(const json_t *obj, const char *key, const char *def)
{
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : def;
}

gr_status gr_vlm_open_blip2(gr_ctx *ctx, const char *dir, const json_t *config,
                            const char *config_path, const gr_weights *weights, gr_vlm **out)
{
    *out = NULL;
    const char *path = config_path ? config_path : "config.json";
    const json_t *mt = json_object_get(config, "model_type");
    if (!json_is_string(mt) || strcmp(json_string_value(mt), "blip-2") != 0)
        return gr_fail(GR_ERR_INVALID, "%s: model_type: expected 'blip-2'", path);
    const json_t *vc = json_object_get(config, "vision_config");
    const json_t *tc = json_object_get(config, "text_config");
    if (vc && !json_is_object(vc) && !json_is_null(vc))
        return gr_fail(GR_ERR_INVALID, "%s: vision_config: expected an object", path);
    if (!json_is_object(tc))
        return gr_fail(GR_ERR_INVALID, "%s: text_config: missing or not an object", path);
    const json_t *vmt = vc ? json_object_get(vc, "model_type") : NULL;
    if (vmt && !json_is_string(vmt))
        return gr_fail(GR_ERR_INVALID, "%s: vision_config.model_type: expected a string", path);
    const char *vtype = json_str_or(vc, "model_type", "blip_2_vision_model");
    const char *vplugin = vision_plugin_for(vtype);
    if (!vplugin)
        return gr_fail(GR_ERR_UNSUPPORTED, "%s: vision_config.model_type: '%s' is not supported "
                       "(blip_2_vision_model, clip_vision_model)", path, vtype);
    const json_t *tmt = json_object_get(tc, "model_type");
    if (tmt && !json_is_string(tmt))
        return gr_fail(GR_ERR_INVALID, "%s: text_config.model_type: expected a string", path);
    const char *ttype = json_str_or(tc, "model_type", "opt"); /* Blip2Config's default */
    const char *lplugin = lm_plugin_for(ttype);
    if (!lplugin)
        return gr_fail(GR_ERR_UNSUPPORTED, "%s: text_config.model_type: '%s' is not supported "
                       "(opt, t5, llama)", path, ttype);
    char text_path[1024];
    snprintf(text_path, sizeof text_path, "%s: text_config", path);
    gr_vlm_parts parts = {.struct_size = sizeof parts};
    gr_model_source whole = {.struct_size = sizeof whole, .dir = dir, .config = config,
                             .config_path = path, .weights = weights, .prefix = ""};
    parts.vision.plugin = vplugin;
    parts.vision.src = whole;           /* the plugins read vision_config / qformer_config */
    parts.qformer.plugin = "qformer";
    parts.qformer.src = whole;
    parts.projector.plugin = "linear";
    parts.projector.src = whole;        /* initializer_range */
    parts.projector.src.prefix = "language_projection.";
    parts.lm.plugin = lplugin;
    parts.lm.src = whole;
    parts.lm.src.config = tc;
    parts.lm.src.config_path = text_path;
    parts.lm.src.prefix = "language_model.";
    gr_vlm *m;
    gr_status st = gr_vlm_open_parts(ctx, &parts, &m);
    if (st) return st;
    /* HF's language_projection maps to text hidden_size and concatenates with the token
     * embeddings: an OPT with word_embed_proj_dim != hidden_size cannot be used. */
    if (m->info.lm.embed_dim != m->info.lm.hidden_size) {
        gr_vlm_close(m, ctx);
        return gr_fail(GR_ERR_UNSUPPORTED, "%s: text_config.word_embed_proj_dim: BLIP-2 needs token "
                       "embeddings of hidden_size width (%lld != %lld)", path,
                       (long long)m->info.lm.embed_dim, (long long)m->info.lm.hidden_size);
    }
    *out = m;
    return GR_OK;
}

gr_status gr_vlm_open_dir(gr_ctx *ctx, const char *dir, gr_vlm **out)
{
    *out = NULL;
    char *path = gr_path_join(dir, "config.json");
    if (!path) return gr_fail(GR_ERR_NOMEM, "out of memory");
    char *text = NULL;
    gr_status st = gr_read_file(path, &text, NULL);
    if (st) { free(path); return st; }
    json_error_t jerr;
    json_t *config = json_loads(text, 0, &jerr);
    free(text);
    if (!config || !json_is_object(config)) {
        st = gr_fail(GR_ERR_FORMAT, "%s: invalid JSON (line %d: %s)", path, jerr.line,
                     config ? "not an object" : jerr.text);
        json_decref(config);
        free(path);
        return st;
    }
    gr_weights *w = NULL;
    if ((st = gr_weights_open(dir, &w))) { json_decref(config); free(path); return st; }
    gr_vlm *m;
    st = gr_vlm_open_blip2(ctx, dir, config, path, w, &m);
    free(path);
    if (st) { gr_weights_close(w); json_decref(config); return st; }
    m->owned_config = config;
    m->owned_weights = w;
    *out = m;
    return GR_OK;
}

void gr_vlm_get_info(const gr_vlm *m, gr_vlm_info *out) { *out = m->info; }
int gr_vlm_param_count(const gr_vlm *m) { return m->nparams; }

gr_tensor *gr_vlm_param_at(const gr_vlm *m, int i, const char **name)
{
    if (i < 0 || i >= m->nparams) return NULL;
    if (name) *name = m->params[i].name;
    return m->params[i].t;
}

gr_tensor *gr_vlm_param_find(const gr_vlm *m, const char *name)
{
    for (int i = 0; i < m->nparams; i++)
        if (strcmp(m->params[i].name, name) == 0) return m->params[i].t;
    return NULL;
}

int gr_vlm_set_trainable(gr_vlm *m, const char *pattern, int trainable)
{
    int n = 0;
    for (int i = 0; i < m->nparams; i++)
        if (fnmatch(pattern, m->params[i].name, 0) == 0) {
            gr_set_trainable(m->params[i].t, trainable);
            n++;
        }
    return n;
}

gr_lm *gr_vlm_lm(gr_vlm *m) { return m->lm; }
const gr_lm_iface *gr_vlm_lm_iface(const gr_vlm *m) { return m->lm_if; }

/* x + a zero leaf that records its gradient (the gradient of x itself). */
static gr_tensor *tap(gr_ctx *ctx, gr_tensor *x, gr_tensor **leaf)
{
    *leaf = NULL;
    if (!x) return NULL;
    gr_tensor *z = gr_zeros(ctx, GR_F32, x->ndim, x->shape);
    if (!z) return NULL;
    gr_requires_grad(z);
    *leaf = z;
    return gr_add(ctx, x, z);
}

gr_status gr_vlm_forward(gr_vlm *m, gr_ctx *ctx, const gr_vlm_inputs *in, gr_vlm_outputs *out)
{
    memset(out, 0, sizeof *out);
    out->struct_size = sizeof *out;
    if (!in || in->struct_size < sizeof *in)
        return gr_fail(GR_ERR_INVALID, "vlm forward: inputs missing or too small");
    gr_status st;
    gr_tensor *img = in->image_embeds;
    if (in->pixel_values) {
        gr_vision_outputs vo = {.struct_size = sizeof vo};
        if ((st = m->vision_if->forward(m->vision, ctx, in->pixel_values, 0, &vo)))
            return gr_fail_context(st, "%s", m->names[0]);
        img = vo.last_hidden_state;
        out->vision_pooler = vo.pooler_output;
    }
    if (!img) return gr_fail(GR_ERR_INVALID, "vlm forward: neither pixel_values nor image_embeds given");
    out->image_embeds = img;
    if (in->tap_stage_grads) img = tap(ctx, img, &out->image_embeds_tap);
    gr_tensor *feat = img;
    if (m->qformer) {
        gr_vision_outputs qo = {.struct_size = sizeof qo};
        if ((st = m->qformer_if->forward(m->qformer, ctx, img, 0, &qo)))
            return gr_fail_context(st, "%s", m->names[1]);
        feat = out->query_output = qo.last_hidden_state;
    }
    gr_tensor *prompt;
    if ((st = m->proj_if->forward(m->proj, ctx, feat, &prompt)))
        return gr_fail_context(st, "%s", m->names[2]);
    out->soft_prompt = prompt;
    if (in->tap_stage_grads) prompt = tap(ctx, prompt, &out->prompt_tap);
    if ((st = gr_ctx_status(ctx))) return gr_fail_context(st, "vlm forward");
    if (!in->ids) return GR_OK;

    gr_lm_inputs li = {.struct_size = sizeof li};
    li.batch = prompt->shape[0];
    li.seq = in->seq;
    li.ids = in->ids;
    li.mask = in->mask;
    li.prefix = prompt;
    li.labels = in->labels;
    li.label_len = in->label_len;
    out->lm.struct_size = sizeof out->lm;
    if ((st = m->lm_if->forward(m->lm, ctx, &li, &out->lm)))
        return gr_fail_context(st, "%s", m->names[3]);
    return GR_OK;
}

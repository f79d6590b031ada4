/* `graft surrogate analyze`: the logit lens, the layer-wise prediction trajectory, the range
 * proposal and its JSON / PNG outputs (see surrogate.h and docs/surrogate.md). */
#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "graft/weights.h"
#include "plugin/registry.h"
#include "text/tokenizer.h"
#include "transfer/surrogate.h"

/* ------------------------------------------------------------- logit lens ---- */

enum { LENS_NONE = 0, LENS_RMS = 1, LENS_LN = 2 };

struct gr_lens {
    int norm;               /* LENS_* */
    float eps;
    gr_tensor *norm_w, *norm_b, *proj_out, *head;
};

static gr_tensor *find_param(const gr_param_list *pl, const char *a, const char *b)
{
    for (int i = 0; i < pl->count; i++)
        if (strcmp(pl->items[i]->name, a) == 0 || (b && strcmp(pl->items[i]->name, b) == 0)) return pl->items[i];
    return NULL;
}

static int json_flag(const json_t *cfg, const char *key, int def)
{
    const json_t *v = json_object_get(cfg, key);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

gr_status gr_lens_open(const char *family, const gr_lm_iface *iface, gr_lm *lm, const json_t *config,
                       const char *config_path, gr_lens **out)
{
    *out = NULL;
    if (strcmp(family, "llama") != 0 && strcmp(family, "opt") != 0)
        return gr_fail(GR_ERR_UNSUPPORTED, "%s: model_type '%s': the prediction trajectory is defined for "
                       "decoder-only LMs (llama, opt)%s", config_path, family,
                       strcmp(family, "t5") == 0 ? "; T5 is not supported" : "");
    gr_lens *L = calloc(1, sizeof *L);
    if (!L) return gr_fail(GR_ERR_NOMEM, "out of memory");
    gr_param_list pl;
    iface->params(lm, &pl);
    L->head = find_param(&pl, "lm_head.weight", NULL);
    if (!L->head) L->head = iface->input_embeddings(lm); /* tied */
    if (strcmp(family, "llama") == 0) {
        L->norm = LENS_RMS;
        const json_t *e = json_object_get(config, "rms_norm_eps");
        L->eps = json_is_number(e) ? (float)json_number_value(e) : 1e-6f; /* the plugin's float */
        L->norm_w = find_param(&pl, "model.norm.weight", NULL);
        if (!L->norm_w) {
            free(L);
            return gr_fail(GR_ERR_NOT_FOUND, "%s: llama: no parameter 'model.norm.weight'", config_path);
        }
    } else {
        /* OPT: decoder-level LayerNorm only for pre-LN without _remove_final_layer_norm. */
        int final_ln = json_flag(config, "do_layer_norm_before", 1) && !json_flag(config, "_remove_final_layer_norm", 0);
        L->eps = 1e-5f;
        L->norm = final_ln ? LENS_LN : LENS_NONE;
        if (final_ln && json_flag(config, "layer_norm_elementwise_affine", 1)) {
            L->norm_w = find_param(&pl, "model.decoder.final_layer_norm.weight", "decoder.final_layer_norm.weight");
            L->norm_b = find_param(&pl, "model.decoder.final_layer_norm.bias", "decoder.final_layer_norm.bias");
            if (!L->norm_w || !L->norm_b) {
                free(L);
                return gr_fail(GR_ERR_NOT_FOUND, "%s: opt: no parameter 'model.decoder.final_layer_norm.*'", config_path);
            }
        }
        L->proj_out = find_param(&pl, "model.decoder.project_out.weight", "decoder.project_out.weight");
    }
    if (!L->head) {
        free(L);
        return gr_fail(GR_ERR_NOT_FOUND, "%s: %s: the model has no output head", config_path, family);
    }
    *out = L;
    return GR_OK;
}

gr_tensor *gr_lens_apply(gr_ctx *ctx, const gr_lens *L, gr_tensor *h)
{
    if (L->norm == LENS_RMS) h = gr_rmsnorm(ctx, h, L->norm_w, L->eps);
    else if (L->norm == LENS_LN) h = gr_layernorm(ctx, h, L->norm_w, L->norm_b, L->eps);
    if (L->proj_out) h = gr_linear(ctx, h, L->proj_out, NULL);
    return gr_linear(ctx, h, L->head, NULL);
}

void gr_lens_free(gr_lens *L) { free(L); }

/* ------------------------------------------------------------- trajectory ---- */

void gr_trajectory_free(gr_trajectory *t)
{
    if (!t) return;
    free(t->kl);
    free(t->mean_logp);
    memset(t, 0, sizeof *t);
}

static double logsumexp(const double *x, int64_t n)
{
    double m = -INFINITY, s = 0;
    for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    if (!isfinite(m)) return m;
    for (int64_t i = 0; i < n; i++) s += exp(x[i] - m);
    return m + log(s);
}

double gr_trajectory_kl(const double *logp_ref, const double *logp, int64_t n)
{
    double zr = logsumexp(logp_ref, n), z = logsumexp(logp, n), kl = 0;
    for (int64_t i = 0; i < n; i++) {
        double lr = logp_ref[i] - zr, lq = logp[i] - z;
        kl += exp(lr) * (lr - lq);
    }
    return kl > 0 ? kl : 0; /* rounding can leave -1e-17 for identical inputs */
}

/* log p(target) of every predicted position of every row: logits [B, T, V] on the host. */
static void gather_logp(const float *logits, int64_t B, int64_t T, int64_t V, const int32_t *ids,
                        const int64_t *len, double *dst /* [B][T-1] */)
{
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i + 1 < len[b]; i++) {
            const float *row = logits + (b * T + i) * V;
            double m = -INFINITY, s = 0;
            for (int64_t v = 0; v < V; v++) m = row[v] > m ? row[v] : m;
            for (int64_t v = 0; v < V; v++) s += exp((double)row[v] - m);
            dst[b * (T - 1) + i] = (double)row[ids[b * T + i + 1]] - m - log(s);
        }
}

gr_status gr_trajectory_compute(gr_ctx *ctx, const gr_lm_iface *iface, gr_lm *lm, const gr_lens *lens,
                                const gr_trajectory_input *in, gr_trajectory *out)
{
    memset(out, 0, sizeof *out);
    gr_lm_info info = {.struct_size = sizeof info};
    info.struct_size = sizeof info;
    iface->info(lm, &info);
    int L = info.num_layers;
    int64_t V = info.vocab_size, maxT = 0;
    for (int64_t k = 0; k < in->count; k++) maxT = in->lens[k] > maxT ? in->lens[k] : maxT;
    /* One layer's logits of a batch are downloaded at once: keep them under 256 MB. */
    int64_t batch = in->batch > 0 ? in->batch : 8, cap = ((int64_t)1 << 26) / (maxT * V > 0 ? maxT * V : 1);
    if (batch > cap) batch = cap > 0 ? cap : 1;
    out->num_layers = L;
    out->kl = calloc((size_t)L + 1, sizeof *out->kl);
    out->mean_logp = calloc((size_t)L + 1, sizeof *out->mean_logp);
    int32_t *ids = malloc((size_t)(batch * maxT + 1) * sizeof *ids), *mask = malloc((size_t)(batch * maxT + 1) * sizeof *mask);
    float *host = malloc((size_t)(batch * maxT * V + 1) * sizeof *host);
    double *logp = malloc((size_t)((L + 1) * batch * (maxT > 1 ? maxT - 1 : 1) + 1) * sizeof *logp);
    int64_t *len = malloc((size_t)(batch + 1) * sizeof *len);
    gr_status s = GR_OK;
    if (!out->kl || !out->mean_logp || !ids || !mask || !host || !logp || !len)
        s = gr_fail(GR_ERR_NOMEM, "surrogate analyze: out of memory (batch %lld x %lld tokens x %lld vocab)",
                    (long long)batch, (long long)maxT, (long long)V);
    int grad = gr_ctx_set_grad_enabled(ctx, 0);
    for (int64_t k0 = 0; s == GR_OK && k0 < in->count; k0 += batch) {
        int64_t B = in->count - k0 < batch ? in->count - k0 : batch, T = 0;
        for (int64_t b = 0; b < B; b++) {
            len[b] = in->lens[k0 + b];
            T = len[b] > T ? len[b] : T;
        }
        if (T < 3) { /* nobody in this batch has two predicted positions */
            out->skipped += B;
            continue;
        }
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < T; t++) {
                ids[b * T + t] = t < len[b] ? in->ids[k0 + b][t] : in->ids[k0 + b][0];
                mask[b * T + t] = t < len[b];
            }
        gr_lm_inputs li;
        memset(&li, 0, sizeof li);
        li.struct_size = sizeof li;
        li.batch = B;
        li.seq = T;
        li.ids = ids;
        li.mask = mask;
        li.want_hidden_states = 1;
        gr_lm_outputs lo = {.struct_size = sizeof lo};
        memset(&lo, 0, sizeof lo);
        lo.struct_size = sizeof lo;
        s = iface->forward(lm, ctx, &li, &lo);
        if (s == GR_OK && lo.num_hidden_states != L + 1)
            s = gr_fail(GR_ERR_INVALID, "surrogate analyze: the model returned %d hidden states for %d layers",
                        lo.num_hidden_states, L);
        for (int l = 0; s == GR_OK && l <= L; l++) {
            gr_tensor *lg = l == L ? lo.logits : gr_lens_apply(ctx, lens, lo.hidden_states[l]);
            if (!lg || (s = gr_to_host_f32(ctx, lg, host)) != GR_OK) {
                s = gr_ctx_status(ctx) ? gr_ctx_status(ctx) : s;
                break;
            }
            if (l < L) gr_tensor_free(ctx, lg);
            gather_logp(host, B, T, V, ids, len, logp + (int64_t)l * B * (T - 1));
        }
        if (s != GR_OK) {
            if (gr_ctx_status(ctx)) gr_fail(gr_ctx_status(ctx), "%s", gr_ctx_error(ctx));
            break;
        }
        for (int64_t b = 0; b < B; b++) {
            int64_t n = len[b] - 1;
            if (n < 2) {
                out->skipped++;
                continue;
            }
            const double *ref = logp + (int64_t)L * B * (T - 1) + b * (T - 1);
            for (int l = 0; l <= L; l++) {
                const double *lp = logp + (int64_t)l * B * (T - 1) + b * (T - 1);
                out->kl[l] += gr_trajectory_kl(ref, lp, n);
                for (int64_t i = 0; i < n; i++) out->mean_logp[l] += lp[i];
            }
            out->texts++;
            out->tokens += n;
        }
        gr_ctx_reset(ctx);
    }
    gr_ctx_set_grad_enabled(ctx, grad);
    if (s == GR_OK && out->texts == 0)
        s = gr_fail(GR_ERR_INVALID, "surrogate analyze: no text has the 3 tokens (2 predictions) the trajectory needs");
    for (int l = 0; s == GR_OK && l <= L; l++) {
        out->kl[l] /= (double)out->texts;
        out->mean_logp[l] /= (double)out->tokens;
    }
    free(ids);
    free(mask);
    free(host);
    free(logp);
    free(len);
    if (s != GR_OK) gr_trajectory_free(out);
    return s;
}

/* ------------------------------------------------------------- proposal ---- */

void gr_trajectory_transition(const gr_trajectory *t, gr_transition *out)
{
    memset(out, 0, sizeof *out);
    out->layer = -1;
    int L = t->num_layers;
    double D = t->kl[0] - t->kl[L];
    for (int l = 0; l < L; l++) {
        double d = t->kl[l] - t->kl[l + 1];
        if (out->layer < 0 || d > out->drop) {
            out->layer = l;
            out->drop = d;
        }
    }
    if (!(D > 1e-12) || out->drop <= 0) {
        out->layer = -1;
        snprintf(out->reason, sizeof out->reason,
                 "no abrupt transition: the KL to the last layer does not decline (first %.4g, last %.4g)", t->kl[0],
                 t->kl[L]);
        return;
    }
    out->share = out->drop / D;
    out->ratio = out->drop / (D / L);
    if (out->share < GR_TRANSITION_MIN_SHARE || out->ratio < GR_TRANSITION_MIN_RATIO) {
        snprintf(out->reason, sizeof out->reason,
                 "no abrupt transition: the largest drop (layer %d) is %.0f%% of the decline, %.2fx a uniform step "
                 "(needs >= %.0f%% and >= %.1fx)", out->layer, 100 * out->share, out->ratio,
                 100 * GR_TRANSITION_MIN_SHARE, GR_TRANSITION_MIN_RATIO);
        return;
    }
    out->abrupt = 1;
    int a = out->layer + 1, b = L - 1;
    if (a >= b) {
        snprintf(out->reason, sizeof out->reason,
                 "abrupt transition at layer %d (%.0f%% of the decline), but it is at the end of the stack: "
                 "no late-phase layer can be dropped", out->layer, 100 * out->share);
        return;
    }
    out->has_range = 1;
    out->range.a = a;
    out->range.b = b;
    snprintf(out->reason, sizeof out->reason,
             "abrupt transition at layer %d (%.0f%% of the decline, %.1fx a uniform step): keep 0..%d, translator %d, "
             "drop %d..%d, keep %d..%d", out->layer, 100 * out->share, out->ratio, a - 1, a, a + 1, b - 1, b, L - 1);
}

/* ------------------------------------------------------------- analyze ---- */

/* The corpus's lines as token ids, until max_tokens. */
static gr_status read_corpus(const char *path, const gr_tokenizer *tok, int64_t vocab, int64_t max_seq,
                             int64_t max_tokens, gr_trajectory_input *in, int32_t ***ids_out, int64_t **lens_out)
{
    char *text;
    size_t size;
    gr_status s = gr_read_file(path, &text, &size);
    if (s) return s;
    int64_t cap = 64, n = 0, total = 0;
    int32_t **ids = malloc((size_t)cap * sizeof *ids);
    int64_t *lens = malloc((size_t)cap * sizeof *lens);
    if (!ids || !lens) s = gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
    char *p = text, *end = text + size;
    int64_t line = 0;
    while (s == GR_OK && p < end && (max_tokens <= 0 || total < max_tokens)) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line++;
        char *cur = p;
        p += len + 1;
        if (len && cur[len - 1] == '\r') len--;
        size_t k = 0;
        while (k < len && (cur[k] == ' ' || cur[k] == '\t')) k++;
        if (k == len) continue;
        int32_t *t;
        size_t nt;
        if ((s = gr_tokenizer_encode(tok, cur, len, GR_ENCODE_ADD_SPECIAL, &t, &nt)) != GR_OK) {
            gr_fail_context(s, "%s:%lld", path, (long long)line);
            break;
        }
        if ((int64_t)nt > max_seq) nt = (size_t)max_seq;
        if (max_tokens > 0 && total + (int64_t)nt > max_tokens) nt = (size_t)(max_tokens - total);
        for (size_t i = 0; i < nt; i++)
            if (t[i] < 0 || t[i] >= vocab) {
                s = gr_fail(GR_ERR_INVALID, "%s:%lld: token id %d is outside the model's %lld-entry vocabulary "
                            "(wrong --tokenizer?)", path, (long long)line, t[i], (long long)vocab);
                break;
            }
        if (s != GR_OK || nt == 0) {
            free(t);
            continue;
        }
        if (n == cap) {
            cap *= 2;
            int32_t **ni = realloc(ids, (size_t)cap * sizeof *ids);
            int64_t *nlen = ni ? realloc(lens, (size_t)cap * sizeof *lens) : NULL;
            if (ni) ids = ni;
            if (nlen) lens = nlen;
            if (!ni || !nlen) {
                free(t);
                s = gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
        }
        ids[n] = t;
        lens[n++] = (int64_t)nt;
        total += (int64_t)nt;
    }
    free(text);
    if (s == GR_OK && n == 0) s = gr_fail(GR_ERR_INVALID, "%s: the corpus has no text", path);
    if (s != GR_OK) {
        for (int64_t i = 0; i < n; i++) free(ids[i]);
        free(ids);
        free(lens);
        return s;
    }
    in->ids = (const int32_t *const *)ids;
    in->lens = lens;
    in->count = n;
    *ids_out = ids;
    *lens_out = lens;
    return GR_OK;
}

gr_status gr_surrogate_analyze(const gr_surrogate_analyze_opts *o, gr_trajectory *out)
{
    memset(out, 0, sizeof *out);
    char *cfg_path = gr_path_join(o->target_dir, "config.json");
    if (!cfg_path) return gr_fail(GR_ERR_NOMEM, "out of memory");
    json_error_t je;
    json_t *cfg = json_load_file(cfg_path, 0, &je);
    if (!cfg) {
        gr_status s = gr_path_exists(cfg_path) ? gr_fail(GR_ERR_FORMAT, "%s:%d: %s", cfg_path, je.line, je.text)
                                               : gr_fail(GR_ERR_NOT_FOUND, "%s: not found", cfg_path);
        free(cfg_path);
        return s;
    }
    const json_t *mt = json_object_get(cfg, "model_type");
    const char *family = json_is_string(mt) ? json_string_value(mt) : "";
    gr_status s = GR_OK;
    const void *vi = NULL;
    gr_backend *be = NULL;
    gr_ctx *ctx = NULL;
    gr_weights *w = NULL;
    gr_lm *lm = NULL;
    gr_lens *lens = NULL;
    gr_tokenizer *tok = NULL;
    int32_t **ids = NULL;
    int64_t *lens_ = NULL;
    gr_trajectory_input in;
    memset(&in, 0, sizeof in);
    if (strcmp(family, "llama") != 0 && strcmp(family, "opt") != 0) {
        /* Same message as the lens gives, before anything is loaded. */
        s = gr_lens_open(family, NULL, NULL, cfg, cfg_path, &lens);
        goto done;
    }
    gr_plugins_scan();
    if ((s = gr_plugin_iface(GR_PLUGIN_LANGUAGE_MODEL, family, &vi)) != GR_OK) goto done;
    const gr_lm_iface *iface = vi;
    if ((s = gr_backend_open(o->backend ? o->backend : "cpu", o->backend_options, &be)) != GR_OK) goto done;
    if (!(ctx = gr_ctx_create(be))) { s = gr_fail(GR_ERR_NOMEM, "out of memory"); goto done; }
    if ((s = gr_weights_open(o->target_dir, &w)) != GR_OK) goto done;
    gr_model_source src;
    memset(&src, 0, sizeof src);
    src.struct_size = sizeof src;
    src.dir = o->target_dir;
    src.config = cfg;
    src.config_path = cfg_path;
    src.weights = w;
    src.prefix = "";
    if ((s = iface->open(ctx, &src, &lm)) != GR_OK) goto done;
    if ((s = gr_lens_open(family, iface, lm, cfg, cfg_path, &lens)) != GR_OK) goto done;
    gr_lm_info info = {.struct_size = sizeof info};
    info.struct_size = sizeof info;
    iface->info(lm, &info);
    const char *tdir = o->tokenizer_dir ? o->tokenizer_dir : o->target_dir;
    if ((s = gr_tokenizer_load(tdir, &tok)) != GR_OK) goto done;
    int64_t max_seq = o->max_seq > 0 ? o->max_seq : 256;
    const json_t *mp = json_object_get(cfg, "max_position_embeddings");
    if (strcmp(family, "opt") == 0) {
        int64_t pos = json_is_integer(mp) ? json_integer_value(mp) : 2048;
        if (pos > 0 && max_seq > pos) max_seq = pos;
    }
    if ((s = read_corpus(o->corpus, tok, info.vocab_size, max_seq, o->max_tokens, &in, &ids, &lens_)) != GR_OK) goto done;
    in.batch = o->batch > 0 ? o->batch : 8;
    s = gr_trajectory_compute(ctx, iface, lm, lens, &in, out);
    if (s != GR_OK) gr_fail_context(s, "%s", o->target_dir);
done:
    if (s != GR_OK) {
        char keep[1024];
        snprintf(keep, sizeof keep, "%s", gr_last_error());
        gr_fail(s, "%s", keep);
    }
    for (int64_t i = 0; ids && i < in.count; i++) free(ids[i]);
    free(ids);
    free(lens_);
    gr_tokenizer_free(tok);
    gr_lens_free(lens);
    if (lm) {
        gr_ctx_reset(ctx);
        ((const gr_lm_iface *)vi)->close(lm, ctx);
    }
    gr_weights_close(w);
    gr_ctx_destroy(ctx);
    if (be) gr_backend_close(be);
    json_decref(cfg);
    free(cfg_path);
    return s;
}

/* ------------------------------------------------------------- outputs ---- */

gr_status gr_trajectory_write_json(const char *path, const char *target_dir, const gr_trajectory *t,
                                   const gr_transition *tr)
{
    json_t *root = json_object(), *layers = json_array();
    for (int l = 0; layers && l <= t->num_layers; l++)
        json_array_append_new(layers, json_pack("{s:i,s:f,s:f,s:f}", "layer", l, "kl", t->kl[l], "mean_logp",
                                                t->mean_logp[l], "drop",
                                                l < t->num_layers ? t->kl[l] - t->kl[l + 1] : 0.0));
    json_t *prop = json_pack("{s:b,s:i,s:f,s:f,s:s}", "abrupt", tr->abrupt, "layer", tr->layer, "share", tr->share,
                             "ratio", tr->ratio, "reason", tr->reason);
    if (prop && tr->has_range) json_object_set_new(prop, "range", json_pack("[ii]", tr->range.a, tr->range.b));
    else if (prop) json_object_set_new(prop, "range", json_null());
    gr_status s = GR_OK;
    if (!root || !layers || !prop) s = gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
    if (s == GR_OK) {
        json_object_set_new(root, "target", json_string(target_dir));
        json_object_set_new(root, "num_layers", json_integer(t->num_layers));
        json_object_set_new(root, "texts", json_integer(t->texts));
        json_object_set_new(root, "tokens", json_integer(t->tokens));
        json_object_set_new(root, "skipped", json_integer(t->skipped));
        json_object_set_new(root, "definition", json_string(
            "kl[l] = mean over texts of KL(q_L || q_l), q_l(i) = p_l(token i+1 | prefix) renormalised over the "
            "text's positions, p_l from final norm + LM head applied to hidden_states[l]"));
        json_object_set_new(root, "layers", layers);
        json_object_set_new(root, "proposal", prop);
        layers = prop = NULL;
        char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (!text) s = gr_fail(GR_ERR_NOMEM, "%s: out of memory", path);
        else s = gr_write_file_atomic(path, text, strlen(text));
        free(text);
    }
    json_decref(layers);
    json_decref(prop);
    json_decref(root);
    return s;
}

typedef struct png_buf {
    unsigned char *data;
    size_t len, cap;
} png_buf;

static cairo_status_t png_write(void *closure, const unsigned char *data, unsigned int length)
{
    png_buf *b = closure;
    if (b->len + length > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 65536;
        while (cap < b->len + length) cap *= 2;
        unsigned char *n = realloc(b->data, cap);
        if (!n) return CAIRO_STATUS_NO_MEMORY;
        b->data = n;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, length);
    b->len += length;
    return CAIRO_STATUS_SUCCESS;
}

static void label(cairo_t *cr, double x, double y, double ha, const char *s)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - e.x_advance * ha, y);
    cairo_show_text(cr, s);
}

gr_status gr_trajectory_plot(const char *path, const char *title, const gr_trajectory *t, const gr_transition *tr)
{
    const int W = 760, H = 440;
    const double L0 = 70, R0 = W - 20, T0 = 50, B0 = H - 60;
    int L = t->num_layers;
    double ymax = 0;
    for (int l = 0; l <= L; l++) ymax = t->kl[l] > ymax ? t->kl[l] : ymax;
    if (!(ymax > 0)) ymax = 1;
    /* A round upper limit: 1, 2 or 5 times a power of ten. */
    double step = pow(10, floor(log10(ymax / 4))), top;
    if (ymax / step > 20) step *= 5;
    else if (ymax / step > 8) step *= 2;
    top = ceil(ymax / step) * step;
    cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
    cairo_t *cr = cairo_create(sf);
#define PX(l) (L0 + (R0 - L0) * (double)(l) / (double)(L > 0 ? L : 1))
#define PY(v) (B0 - (B0 - T0) * (v) / top)
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    if (tr->has_range) { /* the dropped layers' span (hidden states a+1..b): condensed into the translator */
        cairo_set_source_rgba(cr, 0.85, 0.33, 0.1, 0.12);
        cairo_rectangle(cr, PX(tr->range.a + 1), T0, PX(tr->range.b) - PX(tr->range.a + 1), B0 - T0);
        cairo_fill(cr);
    }
    cairo_set_line_width(cr, 1);
    cairo_set_font_size(cr, 11);
    for (double v = 0; v <= top * 1.0001; v += step) {
        cairo_set_source_rgba(cr, 0, 0, 0, 0.12);
        cairo_move_to(cr, L0, PY(v));
        cairo_line_to(cr, R0, PY(v));
        cairo_stroke(cr);
        char buf[32];
        snprintf(buf, sizeof buf, "%g", v);
        cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
        label(cr, L0 - 6, PY(v) + 4, 1, buf);
    }
    int every = L > 24 ? 4 : L > 12 ? 2 : 1;
    for (int l = 0; l <= L; l += every) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", l);
        label(cr, PX(l), B0 + 16, 0.5, buf);
    }
    cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
    cairo_rectangle(cr, L0 + 0.5, T0 + 0.5, R0 - L0, B0 - T0);
    cairo_stroke(cr);
    if (tr->layer >= 0) { /* the largest drop: the step from hidden state l* to l*+1 */
        cairo_set_source_rgba(cr, 0.85, 0.33, 0.1, tr->abrupt ? 0.9 : 0.4);
        double dash[2] = {5, 4};
        cairo_set_dash(cr, dash, 2, 0);
        cairo_move_to(cr, (PX(tr->layer) + PX(tr->layer + 1)) / 2, T0);
        cairo_line_to(cr, (PX(tr->layer) + PX(tr->layer + 1)) / 2, B0);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
    }
    cairo_set_source_rgb(cr, 0.12, 0.38, 0.7);
    cairo_set_line_width(cr, 2.2);
    for (int l = 0; l <= L; l++) {
        if (l) cairo_line_to(cr, PX(l), PY(t->kl[l]));
        else cairo_move_to(cr, PX(l), PY(t->kl[l]));
    }
    cairo_stroke(cr);
    for (int l = 0; l <= L; l++) {
        cairo_arc(cr, PX(l), PY(t->kl[l]), 3, 0, 2 * M_PI);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    cairo_set_font_size(cr, 12);
    label(cr, (L0 + R0) / 2, H - 22, 0.5, "hidden state (layer output; 0 = embeddings)");
    cairo_save(cr);
    cairo_translate(cr, 24, (T0 + B0) / 2);
    cairo_rotate(cr, -M_PI / 2);
    label(cr, 0, 0, 0.5, "KL(last || layer), nats");
    cairo_restore(cr);
    cairo_set_font_size(cr, 14);
    label(cr, L0, 22, 0, title ? title : "prediction trajectory");
    cairo_set_font_size(cr, 11);
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    char sub[128];
    if (tr->has_range) snprintf(sub, sizeof sub, "proposed range %d:%d (shaded: dropped)", tr->range.a, tr->range.b);
    else snprintf(sub, sizeof sub, "%s", tr->abrupt ? "abrupt transition at the end: no range" : "no abrupt transition");
    label(cr, L0, 40, 0, sub);
#undef PX
#undef PY
    png_buf buf = {0};
    cairo_surface_flush(sf);
    cairo_status_t cs = cairo_surface_write_to_png_stream(sf, png_write, &buf);
    cairo_destroy(cr);
    cairo_surface_destroy(sf);
    gr_status s = cs == CAIRO_STATUS_SUCCESS ? gr_write_file_atomic(path, buf.data, buf.len)
                                             : gr_fail(GR_ERR_IO, "%s: cannot encode the PNG: %s", path,
                                                       cairo_status_to_string(cs));
    free(buf.data);
    return s;
}

/* The pieces transfer strategies share (graft/transfer.h): loading a source run, the word
 * converter fused into the projector, speed-up accounting into the report, byte comparison. */
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "base/log.h"
#include "data/dataset.h"
#include "graft/transfer.h"
#include "graft/weights.h"
#include "run/runlog.h"
#include "train/checkpoint.h"
#include "train/engine_internal.h"
#include "transfer/converter.h"
#include "transfer/pairs.h"
#include "transfer/speedup.h"
#include "transfer/surrogate.h"

/* ------------------------------------------------------------------ source runs ---- */

gr_status gr_transfer_load_run(gr_engine_model *m, const char *run, const char *pattern, int *loaded)
{
    if (loaded) *loaded = 0;
    char *file = NULL, *ck = NULL;
    gr_status s = GR_OK;
    char *ckdir = gr_is_dir(run) ? gr_path_join(run, GR_RUN_CHECKPOINTS) : NULL;
    if (ckdir && gr_is_dir(ckdir)) {
        s = gr_checkpoint_latest(run, &ck);
        if (s == GR_OK && !(file = gr_path_join(ck, "trainable.safetensors"))) s = gr_fail(GR_ERR_NOMEM, "out of memory");
    } else if (!(file = strdup(run))) { /* a .safetensors file or an HF directory (sharded too) */
        s = gr_fail(GR_ERR_NOMEM, "out of memory");
    }
    gr_weights *w = NULL;
    if (s == GR_OK) s = gr_weights_open(file, &w);
    gr_vlm *vlm = gr_engine_model_vlm(m);
    int count = 0;
    for (int i = 0; s == GR_OK && i < gr_weights_count(w); i++) {
        const char *name = gr_weights_at(w, i)->name;
        /* tensors of other roles ("source/...") and optimizer state are not the run's model */
        if (strchr(name, '/') || fnmatch(pattern, name, 0) != 0) continue;
        gr_tensor *p = gr_vlm_param_find(vlm, name);
        if (!p) { s = gr_fail(GR_ERR_NOT_FOUND, "%s: tensor '%s' is not a parameter of the model", file, name); break; }
        const char *nm[1] = {name};
        s = gr_load_tensors(gr_engine_model_ctx(m), gr_weights_at(w, i)->file, &p, nm, 1);
        count += s == GR_OK;
    }
    if (s == GR_OK && count == 0) s = gr_fail(GR_ERR_NOT_FOUND, "%s: no tensor matches '%s'", file, pattern);
    if (w) gr_weights_close(w);
    free(file);
    free(ck);
    free(ckdir);
    if (loaded) *loaded = count;
    return s == GR_OK ? s : gr_fail_context(s, "loading run %s", run);
}

gr_status gr_transfer_run_flops(const char *run, double *flops)
{
    *flops = 0;
    char *rp = gr_path_join(run, GR_RUN_REPORT);
    if (!rp) return gr_fail(GR_ERR_NOMEM, "out of memory");
    gr_status s = GR_ERR_NOT_FOUND;
    if (gr_path_exists(rp)) {
        gr_report *r = NULL;
        s = gr_report_load(rp, &r);
        if (s == GR_OK) s = gr_report_get_number(r, "totals.flops", flops);
        gr_report_free(r);
    }
    free(rp);
    if (s == GR_OK) return s;
    gr_clear_error();
    gr_run_data *d = NULL;
    s = gr_run_data_read(run, &d);
    if (s != GR_OK) return gr_fail_context(s, "source run %s", run);
    if (d->step_count) *flops = d->steps[d->step_count - 1].flops_total;
    gr_run_data_free(d);
    return GR_OK;
}

gr_status gr_transfer_report_value(const char *run, const char *path, double *value)
{
    *value = 0;
    char *rp = gr_path_join(run, GR_RUN_REPORT);
    if (!rp) return gr_fail(GR_ERR_NOMEM, "out of memory");
    gr_report *r = NULL;
    gr_status s = gr_report_load(rp, &r);
    if (s == GR_OK) s = gr_report_get_number(r, path, value);
    gr_report_free(r);
    free(rp);
    return s;
}

/* -------------------------------------------------------------------- converter ---- */

/* The input embedding table of a model's LM: rows are what a soft prompt stands next to
 * (graft's soft prompts enter before OPT's project_in, so the table is used as stored). */
static gr_tensor *embedding_table(const gr_engine_model *m, const char **name)
{
    static const char *const names[] = {
        "language_model.model.decoder.embed_tokens.weight", /* OPT */
        "language_model.decoder.embed_tokens.weight",       /* OPT saved without "model." */
        "language_model.model.embed_tokens.weight",         /* Llama */
        "language_model.shared.weight",                     /* T5 */
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        gr_tensor *t = gr_engine_model_find(m, names[i]);
        if (t) { *name = names[i]; return t; }
    }
    return NULL;
}

static gr_status host_f32(const gr_engine_model *m, const gr_tensor *t, float **out)
{
    *out = malloc(sizeof(float) * (size_t)gr_numel(t) + 1);
    if (!*out) return gr_fail(GR_ERR_NOMEM, "out of memory");
    gr_status s = gr_to_host_f32(gr_engine_model_ctx(m), t, *out);
    if (s != GR_OK) { free(*out); *out = NULL; }
    return s;
}

/* The texts of data.train: captions (or VQA questions and answers). */
static gr_status train_texts(const gr_engine *e, int64_t max, const char ***out, int64_t *n, gr_dataset **keep)
{
    const gr_config *c = gr_engine_config(e);
    const char *fmt = gr_config_string(c, "data.format"), *path = gr_config_string(c, "data.train");
    if (!path[0]) return gr_fail(GR_ERR_INVALID, "data.train: the word converter needs training captions");
    gr_dataset_spec spec = {.path = path};
    const char *root = gr_config_string(c, "data.image_root");
    spec.image_root = root[0] ? root : NULL;
    if (strcmp(fmt, "karpathy") == 0) spec.format = GR_DATASET_KARPATHY;
    else if (strcmp(fmt, "jsonl") == 0) spec.format = GR_DATASET_JSONL;
    else if (strcmp(fmt, "coco") == 0) spec.format = GR_DATASET_COCO_CAPTIONS;
    else if (strcmp(fmt, "vqav2") == 0) spec.format = GR_DATASET_VQAV2;
    else return gr_fail(GR_ERR_INVALID, "data.format: '%s' is not karpathy, jsonl, coco or vqav2", fmt);
    gr_status s = gr_dataset_open(&spec, keep);
    if (s != GR_OK) return s;
    size_t ns = gr_dataset_size(*keep), cap = 0, k = 0;
    for (size_t i = 0; i < ns; i++) cap += (size_t)gr_dataset_sample(*keep, i)->n_texts + 1;
    const char **t = malloc(sizeof(char *) * (cap + 1));
    if (!t) return gr_fail(GR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < ns && (max <= 0 || (int64_t)k < max); i++) {
        const gr_sample *sm = gr_dataset_sample(*keep, i);
        if (sm->question) t[k++] = sm->question;
        for (int j = 0; j < sm->n_texts && (max <= 0 || (int64_t)k < max); j++) t[k++] = sm->texts[j];
    }
    *out = t;
    *n = (int64_t)k;
    return GR_OK;
}

/* RUN_DIR/converter.safetensors: the converter, the source projector and the fused one, so the
 * fusion can be checked and reused. */
static gr_status save_converter(gr_engine *e, gr_engine_model *dst, const float *W, const float *b, int64_t dt,
                                int64_t ds, const float *Ws, const float *bs, int64_t din, const float *Wt,
                                const float *bt)
{
    gr_ctx *ctx = gr_engine_model_ctx(dst);
    const int64_t sh[6][2] = {{dt, ds}, {dt, 0}, {ds, din}, {ds, 0}, {dt, din}, {dt, 0}};
    const float *data[6] = {W, b, Ws, bs, Wt, bt};
    const char *names[6] = {"converter.weight", "converter.bias", "source_projection.weight",
                            "source_projection.bias", "language_projection.weight", "language_projection.bias"};
    gr_tensor *t[6] = {0};
    const char *nm[6];
    int n = 0;
    gr_status s = GR_OK;
    for (int i = 0; i < 6 && s == GR_OK; i++) {
        if (!data[i]) continue;
        t[n] = gr_param_from_host(ctx, names[i], GR_F32, sh[i][1] ? 2 : 1, sh[i], data[i]);
        if (!t[n]) { s = gr_ctx_status(ctx) != GR_OK ? gr_ctx_status(ctx) : gr_fail(GR_ERR_NOMEM, "out of memory"); break; }
        nm[n++] = names[i];
    }
    char *path = s == GR_OK ? gr_path_join(gr_engine_run_dir(e), "converter.safetensors") : NULL;
    const char *meta[] = {"format", "pt", "producer", "graft", NULL};
    if (s == GR_OK) s = path ? gr_safetensors_write(ctx, path, t, nm, n, meta) : gr_fail(GR_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) gr_tensor_free(ctx, t[i]);
    free(path);
    return s;
}

gr_status gr_transfer_convert_projector(gr_engine *e, gr_engine_model *src, gr_engine_model *dst,
                                        const gr_converter_opts *o, gr_converter_summary *out)
{
    memset(out, 0, sizeof *out);
    out->struct_size = sizeof *out;
    unsigned sources;
    gr_status s = gr_pairs_parse_sources(o->pairs, "converter pairs", &sources);
    if (s != GR_OK) return s;
    const char *ns = NULL, *nt = NULL;
    gr_tensor *es = embedding_table(src, &ns), *et = embedding_table(dst, &nt);
    if (!es || !et) return gr_fail(GR_ERR_UNSUPPORTED, "converter: the %s model's LM has no known input embedding table",
                                   es ? "target" : "source");
    gr_tensor *Ws = gr_engine_model_find(src, "language_projection.weight");
    gr_tensor *bs = gr_engine_model_find(src, "language_projection.bias");
    gr_tensor *Wt = gr_engine_model_find(dst, "language_projection.weight");
    gr_tensor *bt = gr_engine_model_find(dst, "language_projection.bias");
    if (!Ws || !Wt || !bt)
        return gr_fail(GR_ERR_UNSUPPORTED, "converter: fusion needs a linear projector (language_projection.weight "
                       "and .bias) in both models");
    const int64_t vs = es->shape[0], ds = es->shape[1], vt = et->shape[0], dt = et->shape[1];
    const int64_t din = Ws->shape[1];
    if (Ws->shape[0] != ds || Wt->shape[0] != dt || Wt->shape[1] != din || bt->shape[0] != dt)
        return gr_fail(GR_ERR_SHAPE, "converter: projectors [%lld, %lld] -> [%lld, %lld] do not fit embeddings of width "
                       "%lld -> %lld", (long long)Ws->shape[0], (long long)din, (long long)Wt->shape[0],
                       (long long)Wt->shape[1], (long long)ds, (long long)dt);
    const char **texts = NULL;
    int64_t n_texts = 0;
    gr_dataset *ds_keep = NULL;
    gr_pair_set ps = {0};
    float *tab_s = NULL, *tab_t = NULL, *W = NULL, *b = NULL, *hWs = NULL, *hbs = NULL, *hWt = NULL, *hbt = NULL;
    if (sources & GR_PAIRS_POSITION) s = train_texts(e, o->max_captions, &texts, &n_texts, &ds_keep);
    if (s == GR_OK)
        s = gr_pairs_build(gr_engine_model_tokenizer(src), gr_engine_model_tokenizer(dst), texts,
                           n_texts, sources, &ps);
    if (s == GR_OK) s = host_f32(src, es, &tab_s);
    if (s == GR_OK) s = host_f32(dst, et, &tab_t);
    if (s == GR_OK) s = host_f32(src, Ws, &hWs);
    if (s == GR_OK && bs) s = host_f32(src, bs, &hbs);
    W = malloc(sizeof(float) * (size_t)(dt * ds));
    b = malloc(sizeof(float) * (size_t)dt);
    hWt = malloc(sizeof(float) * (size_t)(dt * din));
    hbt = malloc(sizeof(float) * (size_t)dt);
    if (s == GR_OK && (!W || !b || !hWt || !hbt)) s = gr_fail(GR_ERR_NOMEM, "out of memory");
    gr_converter_report rep = {0};
    if (s == GR_OK) {
        gr_token_pairs view = gr_pair_set_view(&ps);
        gr_converter_config cc = {o->lr, o->epochs, o->captions_per_batch, o->seed};
        s = gr_converter_train(tab_s, vs, ds, tab_t, vt, dt, &view, &cc, W, b, &rep);
    }
    if (s == GR_OK) {
        gr_projector_fuse(W, b, dt, ds, hWs, hbs, din, hWt, hbt);
        s = gr_upload(gr_engine_model_ctx(dst), Wt, hWt);
        if (s == GR_OK) s = gr_upload(gr_engine_model_ctx(dst), bt, hbt);
    }
    if (s == GR_OK) s = save_converter(e, dst, W, b, dt, ds, hWs, hbs, din, hWt, hbt);
    if (s == GR_OK) {
        /* each epoch: forward X W^T (2 n ds dt) and the weight gradient (2 n ds dt); the final
         * cosine pass: one forward; the fusion: 2 dt ds din + 2 dt ds */
        double n = (double)rep.pairs;
        out->flops = (double)o->epochs * 4.0 * n * (double)ds * (double)dt + 2.0 * n * (double)ds * (double)dt +
                     2.0 * (double)dt * (double)ds * (double)(din + 1);
        out->captions = ps.stats.captions;
        out->captions_matched = ps.stats.captions_matched;
        out->position_pairs = ps.stats.position_pairs;
        out->position_distinct = ps.stats.position_distinct;
        out->string_pairs = ps.stats.string_pairs;
        out->string_in_position = ps.stats.string_in_position;
        out->pairs_used = rep.pairs;
        out->first_loss = rep.first_loss;
        out->final_loss = rep.final_loss;
        out->final_cos = rep.final_cos;
        char line[256], msg[512];
        gr_pair_stats_format(&ps.stats, sources, line, sizeof line);
        snprintf(msg, sizeof msg, "%s -> %s: %s; loss %.4f -> %.4f, mean cos %.4f", ns, nt, line, rep.first_loss,
                 rep.final_loss, rep.final_cos);
        gr_log(GR_LOG_INFO, "converter: %s", msg);
        gr_engine_event(e, "converter", msg);
        gr_engine_report_string(e, "converter.pairs_source", o->pairs);
        gr_engine_report_number(e, "converter.captions", (double)out->captions);
        gr_engine_report_number(e, "converter.captions_matched", (double)out->captions_matched);
        gr_engine_report_number(e, "converter.position_pairs", (double)out->position_pairs);
        gr_engine_report_number(e, "converter.position_distinct", (double)out->position_distinct);
        gr_engine_report_number(e, "converter.string_pairs", (double)out->string_pairs);
        gr_engine_report_number(e, "converter.string_in_position", (double)out->string_in_position);
        gr_engine_report_number(e, "converter.first_loss", rep.first_loss);
        gr_engine_report_number(e, "converter.final_loss", rep.final_loss);
        gr_engine_report_number(e, "converter.final_cos", rep.final_cos);
        gr_engine_report_number(e, "converter.flops", out->flops);
        gr_engine_report_number(e, "transfer.extra_flops", out->flops);
    }
    gr_pair_set_free(&ps);
    free((void *)texts);
    gr_dataset_free(ds_keep);
    free(tab_s); free(tab_t); free(W); free(b); free(hWs); free(hbs); free(hWt); free(hbt);
    return s == GR_OK ? s : gr_fail_context(s, "word converter");
}

/* --------------------------------------------------------------------- speed-up ---- */

gr_status gr_transfer_speedup(gr_engine *e, const char *const *scratch_runs, int n_scratch,
                              const char *const *metrics, int n_metrics, double max_epochs, double extra_flops,
                              double source_flops)
{
    const char *self = gr_engine_run_dir(e);
    gr_speedup_input in = {0};
    in.scratch = scratch_runs;
    in.n_scratch = n_scratch;
    in.transfer = &self;
    in.n_transfer = 1;
    in.split = "val";
    in.max_epochs = max_epochs;
    in.extra_flops = extra_flops;
    in.source_flops = source_flops;
    gr_speedup rows[16];
    const char *labels[16];
    int n = 0;
    for (int i = 0; i < n_metrics && n < 16; i++) {
        gr_status s = gr_speedup_compute(&in, metrics[i], &rows[n]);
        if (s == GR_ERR_NOT_FOUND) { gr_clear_error(); continue; }
        if (s != GR_OK) return gr_fail_context(s, "speed-up");
        const char *names[16];
        double values[16];
        int nf = gr_speedup_fields(&rows[n], names, values, 16);
        for (int k = 0; k < nf; k++) {
            char key[160];
            snprintf(key, sizeof key, "speedup.%s.%s", metrics[i], names[k]);
            gr_engine_report_number(e, key, values[k]);
        }
        labels[n] = self;
        n++;
    }
    if (n == 0) return gr_fail(GR_ERR_NOT_FOUND, "speed-up: neither run evaluated any of the %d metrics on val", n_metrics);
    if (source_flops > 0) gr_engine_report_number(e, "transfer.source_flops", source_flops);
    gr_speedup_print_table(stdout, "speed-up against scratch (val):", labels, rows, n);
    fflush(stdout);
    return GR_OK;
}

/* ------------------------------------------------------------------- comparison ---- */

gr_status gr_transfer_compare_params(const gr_engine_model *a, const gr_engine_model *b, const char *pattern,
                                     int *compared, int *differ)
{
    *compared = *differ = 0;
    for (int i = 0; i < gr_engine_model_param_count(a); i++) {
        const char *name;
        gr_tensor *x = gr_engine_model_param(a, i, &name);
        if (fnmatch(pattern, name, 0) != 0) continue;
        gr_tensor *y = gr_engine_model_find(b, name);
        if (!y) continue;
        size_t nx = gr_nbytes(x), ny = gr_nbytes(y);
        int same = nx == ny && x->dtype == y->dtype;
        if (same) {
            void *hx = malloc(nx + 1), *hy = malloc(ny + 1);
            gr_status s = hx && hy ? GR_OK : gr_fail(GR_ERR_NOMEM, "out of memory");
            if (s == GR_OK) s = gr_to_host(gr_engine_model_ctx(a), x, hx);
            if (s == GR_OK) s = gr_to_host(gr_engine_model_ctx(b), y, hy);
            if (s == GR_OK) same = memcmp(hx, hy, nx) == 0;
            free(hx);
            free(hy);
            if (s != GR_OK) return s;
        }
        (*compared)++;
        *differ += !same;
    }
    return GR_OK;
}

/* -------------------------------------------------------------------- surrogate ---- */

gr_status gr_transfer_read_surrogate(const char *dir, gr_surrogate_map *out)
{
    memset(out, 0, sizeof *out);
    gr_surrogate_layout l = {0};
    gr_status s = gr_surrogate_read_layout(dir, &l, NULL);
    if (s != GR_OK) return s;
    if (l.num_kept > GR_SURROGATE_MAX_LAYERS || l.num_translators > GR_SURROGATE_MAX_LAYERS) {
        gr_surrogate_layout_free(&l);
        return gr_fail(GR_ERR_UNSUPPORTED, "%s: more than %d layers", dir, GR_SURROGATE_MAX_LAYERS);
    }
    out->num_layers = l.num_layers;
    out->num_kept = l.num_kept;
    memcpy(out->kept, l.kept, sizeof(int) * (size_t)l.num_kept);
    out->num_translators = l.num_translators;
    memcpy(out->translators, l.translators, sizeof(int) * (size_t)l.num_translators);
    gr_surrogate_layout_free(&l);
    return GR_OK;
}

/* The target name of a surrogate tensor: "...layers.N...." with N -> kept[N]. */
static int map_name(const char *name, const gr_surrogate_map *map, char *out, size_t cap)
{
    const char *p = strstr(name, "layers.");
    if (!p) return snprintf(out, cap, "%s", name) < (int)cap;
    char *end;
    long i = strtol(p + 7, &end, 10);
    if (end == p + 7 || *end != '.' || i < 0 || i >= map->num_kept) return 0;
    return snprintf(out, cap, "%.*slayers.%d%s", (int)(p - name), name, map->kept[i], end) < (int)cap;
}

gr_status gr_transfer_check_surrogate(const gr_engine_model *sur, const gr_engine_model *tgt,
                                      const gr_surrogate_map *map, int *compared, int *differ, char *first_diff,
                                      size_t cap)
{
    *compared = *differ = 0;
    if (cap) first_diff[0] = 0;
    for (int i = 0; i < gr_engine_model_param_count(sur); i++) {
        const char *name;
        gr_tensor *x = gr_engine_model_param(sur, i, &name);
        if (strncmp(name, "language_model.", 15) != 0) continue;
        char tn[512];
        gr_tensor *y = map_name(name, map, tn, sizeof tn) ? gr_engine_model_find(tgt, tn) : NULL;
        if (!y) return gr_fail(GR_ERR_NOT_FOUND, "surrogate tensor %s has no counterpart %s in the target", name, tn);
        size_t nx = gr_nbytes(x);
        int same = nx == gr_nbytes(y) && x->dtype == y->dtype;
        if (same) {
            void *hx = malloc(nx + 1), *hy = malloc(nx + 1);
            gr_status s = hx && hy ? GR_OK : gr_fail(GR_ERR_NOMEM, "out of memory");
            if (s == GR_OK) s = gr_to_host(gr_engine_model_ctx(sur), x, hx);
            if (s == GR_OK) s = gr_to_host(gr_engine_model_ctx(tgt), y, hy);
            if (s == GR_OK) same = memcmp(hx, hy, nx) == 0;
            free(hx);
            free(hy);
            if (s != GR_OK) return s;
        }
        (*compared)++;
        if (!same) {
            if (*differ == 0 && cap) snprintf(first_diff, cap, "%s", name);
            (*differ)++;
        }
    }
    return GR_OK;
}


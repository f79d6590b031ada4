/* The VPGTrans recipe (TaS, TaT, and the inherit baseline) over the engine: see graft/transfer.h
 * and docs/strategies.md. Each strategy plugin declares its keys (GR_VPGTRANS_KEYS with its
 * defaults) and calls gr_transfer_run_vpgtrans with its name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "graft/transfer.h"
#include "run/runlog.h"

static const char *key(char *buf, size_t cap, const char *name, const char *k)
{
    snprintf(buf, cap, "strategy.%s.%s", name, k);
    return buf;
}

/* FNV-1a of every parameter's bytes (a stage-1 snapshot that costs one host copy at a time). */
static gr_status param_hashes(const gr_engine_model *m, uint64_t **out)
{
    int n = gr_engine_model_param_count(m);
    uint64_t *h = calloc((size_t)n + 1, sizeof *h);
    if (!h) return gr_fail(GR_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        gr_tensor *t = gr_engine_model_param(m, i, NULL);
        size_t nb = gr_nbytes(t);
        unsigned char *buf = malloc(nb + 1);
        gr_status s = buf ? gr_to_host(gr_engine_model_ctx(m), t, buf) : gr_fail(GR_ERR_NOMEM, "out of memory");
        if (s != GR_OK) { free(buf); free(h); return s; }
        uint64_t x = 1469598103934665603ULL;
        for (size_t k = 0; k < nb; k++) x = (x ^ buf[k]) * 1099511628211ULL;
        h[i] = x;
        free(buf);
    }
    *out = h;
    return GR_OK;
}

gr_status gr_transfer_run_vpgtrans(gr_engine *e, const char *name)
{
    const gr_config *c = gr_engine_config(e);
    char k[160];
    gr_engine_model *src = NULL, *dst = NULL;
    gr_status s = gr_engine_open_model(e, "target", &dst);
    if (s != GR_OK) return s;

    /* the source VPG */
    /* source_run: a graft run that trained the source (its checkpoint), a safetensors file or
     * an HF directory; empty: model.source as configured is the trained source (a BLIP-2
     * checkpoint given as model.source.blip2) */
    const char *source_run = gr_config_string(c, key(k, sizeof k, name, "source_run"));
    s = gr_engine_open_model(e, "source", &src);
    if (s == GR_OK && source_run[0]) s = gr_transfer_load_run(src, source_run, "*", NULL);
    int n_inherit = gr_config_list_count(c, key(k, sizeof k, name, "inherit"));
    for (int i = 0; s == GR_OK && i < n_inherit; i++) {
        int copied = 0;
        s = gr_engine_copy_params(dst, src, gr_config_list_string(c, k, i), &copied);
    }
    if (s != GR_OK) return s;
    double source_flops = 0; /* unknown for a released checkpoint: reported as 0 */
    char *runlog = source_run[0] ? gr_path_join(source_run, GR_RUN_METRICS) : NULL;
    if (runlog && gr_path_exists(runlog)) s = gr_transfer_run_flops(source_run, &source_flops);
    free(runlog);
    if (s != GR_OK) return s;
    gr_engine_report_number(e, "transfer.source_flops", source_flops);
    gr_engine_report_string(e, "transfer.source_run", source_run[0] ? source_run : "model.source");

    /* stage 0: the word converter fused into the source projector */
    double extra_flops = 0;
    if (gr_config_bool(c, key(k, sizeof k, name, "converter"))) {
        gr_converter_opts o = {.struct_size = sizeof o};
        o.pairs = gr_config_string(c, key(k, sizeof k, name, "pairs"));
        o.lr = gr_config_float(c, key(k, sizeof k, name, "converter_lr"));
        o.epochs = (int)gr_config_int(c, key(k, sizeof k, name, "converter_epochs"));
        o.captions_per_batch = gr_config_int(c, key(k, sizeof k, name, "converter_batch"));
        o.max_captions = gr_config_int(c, key(k, sizeof k, name, "converter_captions"));
        o.seed = (uint64_t)gr_config_int(c, key(k, sizeof k, name, "converter_seed"));
        if (o.epochs < 1 || o.lr <= 0 || o.captions_per_batch < 1)
            return gr_fail(GR_ERR_INVALID, "strategy.%s.converter_*: epochs and batch must be >= 1 and lr > 0", name);
        gr_converter_summary sum;
        s = gr_transfer_convert_projector(e, src, dst, &o, &sum);
        if (s != GR_OK) return s;
        extra_flops = sum.flops;
        printf("%s: converter on %lld pair occurrences (position %lld from %lld/%lld captions, string %lld): "
               "loss %.4f -> %.4f, mean cos %.4f\n", name, (long long)sum.pairs_used, (long long)sum.position_pairs,
               (long long)sum.captions_matched, (long long)sum.captions, (long long)sum.string_pairs,
               sum.first_loss, sum.final_loss, sum.final_cos);
        fflush(stdout);
    }

    /* stage 1: projector warm-up */
    gr_stage_spec base;
    gr_engine_stage_defaults(e, &base);
    int64_t warm = gr_config_int(c, key(k, sizeof k, name, "warmup_epochs"));
    int64_t fine = gr_config_int(c, key(k, sizeof k, name, "finetune_epochs"));
    if (warm < 0) return gr_fail(GR_ERR_INVALID, "strategy.%s.warmup_epochs: must be >= 0", name);
    if (fine < 0) fine = base.epochs - warm;
    if (fine < 1) return gr_fail(GR_ERR_INVALID, "strategy.%s: no fine-tuning epochs left (train.epochs %lld, warm-up %lld)",
                                 name, (long long)base.epochs, (long long)warm);
    gr_stage_result r;
    if (warm > 0) {
        int verify = gr_config_bool(c, key(k, sizeof k, name, "verify_stage1"));
        uint64_t *before = NULL, *after = NULL;
        if (verify && (s = param_hashes(dst, &before)) != GR_OK) return s;
        static const char *const proj[] = {"language_projection.*"};
        gr_stage_spec w = base;
        w.name = "warmup";
        w.trainable = proj;
        w.n_trainable = 1;
        w.n_lr_mults = 0;
        w.schedule = "constant";
        w.lr = base.lr * gr_config_float(c, key(k, sizeof k, name, "warmup_lr_mult"));
        w.warmup_steps = 0;
        w.epochs = warm;
        w.steps = 0;
        s = gr_engine_run_stage(e, dst, &w, &r);
        if (s == GR_OK && verify) s = param_hashes(dst, &after);
        if (s == GR_OK && verify) {
            int other = 0, projector = 0;
            const char *first = NULL;
            for (int i = 0; i < gr_engine_model_param_count(dst); i++) {
                const char *pn;
                gr_engine_model_param(dst, i, &pn);
                if (before[i] == after[i]) continue;
                if (strncmp(pn, "language_projection.", 20) == 0) projector++;
                else { other++; if (!first) first = pn; }
            }
            gr_engine_report_number(e, "checks.stage1_projector_changed", projector);
            gr_engine_report_number(e, "checks.stage1_other_changed", other);
            printf("%s: stage 1 changed %d projector tensor(s) and %d other tensor(s)\n", name, projector, other);
            if (other) s = gr_fail(GR_ERR_NUMERIC, "stage warmup: tensor %s changed although only the projector trains", first);
        }
        free(before);
        free(after);
        if (s != GR_OK) return s;
    }

    /* stage 2: the VPG and the projector, the normal schedule */
    gr_stage_spec f = base;
    f.name = "finetune";
    f.epochs = fine;
    s = gr_engine_run_stage(e, dst, &f, &r);
    if (s != GR_OK) return s;
    if (gr_config_bool(c, key(k, sizeof k, name, "test"))) {
        gr_stage_result t;
        s = gr_engine_evaluate(e, dst, base.task, "test", &t);
        if (s != GR_OK) return s;
    }

    /* accounting */
    int nc = gr_config_list_count(c, key(k, sizeof k, name, "compare"));
    if (nc > 0) {
        const char *runs[8], *metrics[16];
        if (nc > 8) return gr_fail(GR_ERR_INVALID, "%s: at most 8 scratch runs", k);
        for (int i = 0; i < nc; i++) runs[i] = gr_config_list_string(c, k, i);
        int nm = gr_config_list_count(c, key(k, sizeof k, name, "speedup_metrics"));
        if (nm > 16) nm = 16;
        for (int i = 0; i < nm; i++) metrics[i] = gr_config_list_string(c, k, i);
        s = gr_transfer_speedup(e, runs, nc, metrics, nm, gr_config_float(c, key(k, sizeof k, name, "speedup_max_epochs")),
                                extra_flops, source_flops);
    }
    return s;
}

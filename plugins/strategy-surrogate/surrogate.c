/* Plugin `surrogate` (kind strategy): zero-shot grafting via a surrogate LM (Yue et al., 2025).
 *
 * Roles: "source" is the surrogate VLM (model.source.lm_dir = a `graft surrogate build`
 * directory of the target), "target" the full target VLM. Stages, all on the surrogate unless
 * said otherwise:
 *   1. "translator": the translator layer(s) (from surrogate.json) + stage1_trainable (the
 *      adapter = projector by default) learn to stand in for the dropped layers;
 *   2. "encoder": train.trainable (the VPG and the projector), translator frozen;
 *   then the surrogate pair is evaluated, the trained tensors are copied into the target
 *   (checked byte for byte) and the target is evaluated with no training: the zero-shot graft;
 *   3. optional "decoder" on the target (finetune_epochs > 0) from the grafted start.
 * The table: surrogate pair vs grafted vs scratch on the target (strategy.surrogate.compare),
 * with the training FLOPs of each. See docs/strategies.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graft/plugin.h"
#include "graft/strategy.h"
#include "graft/transfer.h"

#define P "strategy.surrogate."

static const gr_config_key keys[] = {
    {P "stage1_trainable", GR_CFG_STRING_LIST, "[\"language_projection.*\"]",
     "stage 1 trains these and the translator layer(s)"},
    {P "stage1_epochs", GR_CFG_INT, "1", "stage 1 epochs (0: skip)"},
    {P "stage1_lr", GR_CFG_FLOAT, "0", "stage 1 lr (0: train.lr)"},
    {P "stage2_epochs", GR_CFG_INT, "-1", "stage 2 epochs (-1: train.epochs - stage1_epochs)"},
    {P "finetune_epochs", GR_CFG_INT, "0", "stage 3: epochs on the full target after grafting (0: none)"},
    {P "graft", GR_CFG_STRING_LIST, "[\"vision_model.*\", \"query_tokens\", \"qformer.*\", \"language_projection.*\"]",
     "tensors carried from the surrogate VLM to the target"},
    {P "split", GR_CFG_STRING, "test", "split the surrogate pair, the graft and scratch are compared on"},
    {P "verify_inheritance", GR_CFG_BOOL, "false", "check that every surrogate LM tensor equals its target tensor"},
    {P "compare", GR_CFG_STRING_LIST, "[]", "scratch run(s) on the target for the table (their final.<split> scores)"},
    {P "metrics", GR_CFG_STRING_LIST, "[\"CIDEr\", \"Bleu_4\", \"vqa_acc\"]", "metrics in the table"},
};

static gr_status report_metrics(gr_engine *e, const char *prefix, const gr_stage_result *r)
{
    char key[200];
    for (int i = 0; i < r->n_metrics; i++) {
        snprintf(key, sizeof key, "%s.%s", prefix, r->metric_names[i]);
        gr_status s = gr_engine_report_number(e, key, r->metric_values[i]);
        if (s != GR_OK) return s;
    }
    return GR_OK;
}

static double metric_of(const gr_stage_result *r, const char *name, int *found)
{
    for (int i = 0; i < r->n_metrics; i++)
        if (strcmp(r->metric_names[i], name) == 0) { *found = 1; return r->metric_values[i]; }
    *found = 0;
    return 0;
}

static gr_status run(gr_engine *e)
{
    const gr_config *c = gr_engine_config(e);
    gr_engine_model *sur = NULL, *tgt = NULL;
    gr_status s = gr_engine_open_model(e, "source", &sur);
    if (s == GR_OK) s = gr_engine_open_model(e, "target", &tgt);
    if (s != GR_OK) return s;
    const char *sdir = gr_config_string(c, "model.source.lm_dir");
    gr_surrogate_map *map = calloc(1, sizeof *map);
    if (!map) return gr_fail(GR_ERR_NOMEM, "out of memory");
    s = gr_transfer_read_surrogate(sdir, map);
    if (s != GR_OK) { free(map); return gr_fail_context(s, "model.source.lm_dir"); }
    printf("surrogate: %d of %d target layers kept, %d translator(s)\n", map->num_kept, map->num_layers,
           map->num_translators);
    gr_engine_report_number(e, "surrogate.layers_kept", map->num_kept);
    gr_engine_report_number(e, "surrogate.layers_target", map->num_layers);
    if (gr_config_bool(c, P "verify_inheritance")) {
        int compared = 0, differ = 0;
        char first[256];
        s = gr_transfer_check_surrogate(sur, tgt, map, &compared, &differ, first, sizeof first);
        if (s == GR_OK) {
            printf("surrogate: %d LM tensors compared with the target, %d differ\n", compared, differ);
            gr_engine_report_number(e, "checks.surrogate_tensors_compared", compared);
            gr_engine_report_number(e, "checks.surrogate_tensors_differ", differ);
            if (differ) s = gr_fail(GR_ERR_INVALID, "%s: tensor %s differs from the target's (not a surrogate of "
                                    "model.target?)", sdir, first);
        }
        if (s != GR_OK) { free(map); return s; }
    }

    gr_stage_spec base;
    gr_engine_stage_defaults(e, &base);
    int64_t e1 = gr_config_int(c, P "stage1_epochs"), e2 = gr_config_int(c, P "stage2_epochs");
    if (e1 < 0) { free(map); return gr_fail(GR_ERR_INVALID, P "stage1_epochs: must be >= 0"); }
    if (e2 < 0) e2 = base.epochs - e1;
    if (e2 < 1) { free(map); return gr_fail(GR_ERR_INVALID, P "stage2_epochs: no encoder epochs left"); }
    gr_stage_result r;

    /* stage 1: translator (+ adapter) */
    if (e1 > 0) {
        enum { MAXP = 64 };
        const char *pat[MAXP];
        char tpat[16][64];
        int np = 0;
        for (int i = 0; i < gr_config_list_count(c, P "stage1_trainable") && np < MAXP; i++)
            pat[np++] = gr_config_list_string(c, P "stage1_trainable", i);
        for (int i = 0; i < map->num_translators && i < 16 && np < MAXP; i++) {
            snprintf(tpat[i], sizeof tpat[i], "language_model.*layers.%d.*", map->translators[i]);
            pat[np++] = tpat[i];
        }
        /* LM weights are read-only mappings of the surrogate's file; making the translator
         * trainable gives it a writable copy (copy-on-write in the core). */
        gr_stage_spec t = base;
        t.name = "translator";
        t.trainable = pat;
        t.n_trainable = np;
        t.epochs = e1;
        t.steps = 0;
        double lr1 = gr_config_float(c, P "stage1_lr");
        if (lr1 > 0) t.lr = lr1;
        s = gr_engine_run_stage(e, sur, &t, &r);
        if (s != GR_OK) { free(map); return s; }
    }
    free(map);

    /* stage 2: encoder (VPG) + adapter, translator frozen */
    gr_stage_spec enc = base;
    enc.name = "encoder";
    enc.epochs = e2;
    s = gr_engine_run_stage(e, sur, &enc, &r);
    if (s != GR_OK) return s;
    const double flops_surrogate = r.flops_total;

    const char *split = gr_config_string(c, P "split");
    gr_stage_result rs, rg, rf;
    memset(&rf, 0, sizeof rf);
    s = gr_engine_evaluate(e, sur, base.task, split, &rs);
    if (s == GR_OK) s = report_metrics(e, "surrogate.pair", &rs);

    /* zero-shot graft: the trained tensors into the full target, byte for byte */
    int n_graft = gr_config_list_count(c, P "graft"), total = 0;
    for (int i = 0; s == GR_OK && i < n_graft; i++) {
        int copied = 0;
        s = gr_engine_copy_params(tgt, sur, gr_config_list_string(c, P "graft", i), &copied);
        total += copied;
    }
    int compared = 0, differ = 0;
    for (int i = 0; s == GR_OK && i < n_graft; i++) {
        int cmp = 0, dif = 0;
        s = gr_transfer_compare_params(tgt, sur, gr_config_list_string(c, P "graft", i), &cmp, &dif);
        compared += cmp;
        differ += dif;
    }
    if (s == GR_OK) {
        printf("graft: %d tensors carried into the target, %d compared byte for byte, %d differ\n", total, compared,
               differ);
        gr_engine_report_number(e, "checks.graft_tensors_compared", compared);
        gr_engine_report_number(e, "checks.graft_tensors_differ", differ);
        if (differ) s = gr_fail(GR_ERR_INVALID, "graft: %d tensor(s) of the target differ from the surrogate-trained ones", differ);
    }
    if (s == GR_OK) s = gr_engine_evaluate(e, tgt, base.task, split, &rg);
    if (s == GR_OK) s = report_metrics(e, "surrogate.grafted", &rg);

    /* stage 3: optional decoder-side fine-tuning on the target */
    int64_t e3 = gr_config_int(c, P "finetune_epochs");
    double flops_after = flops_surrogate;
    if (s == GR_OK && e3 > 0) {
        gr_stage_spec d = base;
        d.name = "decoder";
        d.epochs = e3;
        s = gr_engine_run_stage(e, tgt, &d, &r);
        if (s == GR_OK) flops_after = r.flops_total;
        if (s == GR_OK) s = gr_engine_evaluate(e, tgt, base.task, split, &rf);
        if (s == GR_OK) s = report_metrics(e, "surrogate.finetuned", &rf);
    }
    if (s != GR_OK) return s;
    gr_engine_report_number(e, "surrogate.flops_surrogate", flops_surrogate);
    gr_engine_report_number(e, "surrogate.flops_total", flops_after);

    /* the table: surrogate pair vs grafted (vs fine-tuned) vs scratch on the target */
    int nc = gr_config_list_count(c, P "compare");
    double scratch_flops = 0;
    printf("surrogate grafting (%s):\n%-10s %14s %14s%s %14s\n", split, "metric", "surrogate pair", "grafted 0-shot",
           e3 > 0 ? "  grafted+tuned" : "", nc ? "scratch target" : "");
    for (int m = 0; m < gr_config_list_count(c, P "metrics"); m++) {
        const char *name = gr_config_list_string(c, P "metrics", m);
        int f1, f2, f3;
        double a = metric_of(&rs, name, &f1), b = metric_of(&rg, name, &f2), d = metric_of(&rf, name, &f3);
        if (!f1 || !f2) continue;
        double sc = 0;
        int ns = 0;
        for (int i = 0; i < nc; i++) {
            double v = 0, fl = 0;
            char key[200];
            snprintf(key, sizeof key, "final.%s.%s.value", split, name);
            if (gr_transfer_report_value(gr_config_list_string(c, P "compare", i), key, &v) == GR_OK) { sc += v; ns++; }
            if (m == 0 && gr_transfer_run_flops(gr_config_list_string(c, P "compare", i), &fl) == GR_OK) scratch_flops += fl / nc;
        }
        char scs[32] = "";
        if (ns) {
            snprintf(scs, sizeof scs, "%.4f", sc / ns);
            char key[200];
            snprintf(key, sizeof key, "surrogate.scratch.%s", name);
            gr_engine_report_number(e, key, sc / ns);
        } else if (nc) {
            snprintf(scs, sizeof scs, "(no %s eval)", split);
        }
        char tuned[32] = "";
        if (e3 > 0 && f3) snprintf(tuned, sizeof tuned, " %14.4f", d);
        printf("%-10s %14.4f %14.4f%s %14s\n", name, a, b, tuned, scs);
    }
    printf("training FLOPs: surrogate stages %.3g", flops_surrogate);
    if (e3 > 0) printf(", with the target fine-tuning %.3g", flops_after);
    if (scratch_flops > 0) {
        printf(", scratch on the target %.3g (surrogate/scratch %.2f)", scratch_flops, flops_surrogate / scratch_flops);
        gr_engine_report_number(e, "surrogate.flops_scratch", scratch_flops);
    }
    printf("\n");
    fflush(stdout);
    gr_clear_error();
    return GR_OK;
}

static const gr_strategy_iface iface = {
    .struct_size = sizeof(gr_strategy_iface),
    .run = run,
    .config_keys = keys,
    .config_key_count = (int)(sizeof keys / sizeof keys[0]),
};

static const gr_plugin_descriptor desc = GR_PLUGIN_DESCRIPTOR(
    GR_PLUGIN_STRATEGY, "surrogate", "zero-shot grafting: train the VPG on a surrogate LM, carry it to the full target", &iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &desc; }

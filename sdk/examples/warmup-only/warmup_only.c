/* Example strategy "warmup-only": VPGTrans's projector warm-up on its own.
 *
 * Opens the target model (with model.target.init pointing at a trained VPG, e.g. a previous
 * run), freezes everything but the projector, trains it for strategy.warmup-only.steps steps
 * at a constant learning rate of train.lr x strategy.warmup-only.lr_scale, evaluates once,
 * and reports the loss and the metrics. It answers a question cheaply: how far does a new
 * projector alone get in front of an inherited VPG? docs/plugins.md walks through this file. */
#include <stdio.h>

#include "graft/engine.h"
#include "graft/plugin.h"
#include "graft/strategy.h"

/* 1. The settings, declared once: validated in config files, overridable with -s, listed by
 *    `graft config --reference`. Every path starts with strategy.<plugin name>. */
static const gr_config_key keys[] = {
    {"strategy.warmup-only.steps", GR_CFG_INT, "100", "optimizer steps of the warm-up"},
    {"strategy.warmup-only.lr_scale", GR_CFG_FLOAT, "5.0",
     "learning rate = train.lr x this, constant (VPGTrans: 5)"},
    {"strategy.warmup-only.evaluate", GR_CFG_BOOL, "true",
     "evaluate on data.val after the warm-up"},
};

/* 2. The recipe. The same calls in the same order on every run: a resumed run re-executes it
 *    and the engine restores what is finished. */
static gr_status warmup_run(gr_engine *e)
{
    const gr_config *cfg = gr_engine_config(e);
    int64_t steps = gr_config_int(cfg, "strategy.warmup-only.steps");
    double scale = gr_config_float(cfg, "strategy.warmup-only.lr_scale");
    if (steps < 1 || !(scale > 0))
        return gr_fail(GR_ERR_INVALID, "%s: strategy.warmup-only.steps must be >= 1 and lr_scale "
                       "> 0 (got %lld, %g)", gr_config_path(cfg), (long long)steps, scale);

    gr_engine_model *target;
    gr_status s = gr_engine_open_model(e, "target", &target);
    if (s != GR_OK) return s;

    /* 3. One stage: the train.* defaults, then what this recipe changes. */
    gr_stage_spec spec;
    gr_engine_stage_defaults(e, &spec);
    static const char *const projector_only[] = {"language_projection.*"};
    spec.name = "warmup";
    spec.trainable = projector_only;
    spec.n_trainable = 1;
    spec.schedule = "constant";
    spec.lr = spec.lr * scale;
    spec.warmup_steps = 0;
    spec.steps = steps;
    spec.eval_every_steps = 0;
    spec.eval_every_epoch = 0;
    spec.eval_at_start = 0;

    gr_stage_result res = {.struct_size = sizeof res};
    s = gr_engine_run_stage(e, target, &spec, &res);
    if (s != GR_OK) return s; /* GR_ERR_INTERRUPTED: saved; `graft train --resume` continues */

    /* 4. Results go to report.json (and the run log) through the engine. */
    s = gr_engine_report_number(e, "warmup.steps", (double)res.steps);
    if (s == GR_OK) s = gr_engine_report_number(e, "warmup.final_loss", res.last_loss);
    if (s == GR_OK) s = gr_engine_report_number(e, "warmup.flops", res.flops);
    if (s != GR_OK || !gr_config_bool(cfg, "strategy.warmup-only.evaluate")) return s;
    gr_stage_result ev = {.struct_size = sizeof ev};
    s = gr_engine_evaluate(e, target, spec.task, "val", &ev);
    for (int i = 0; s == GR_OK && i < ev.n_metrics && i < 16; i++) {
        char path[128];
        snprintf(path, sizeof path, "warmup.val.%s", ev.metric_names[i]);
        s = gr_engine_report_number(e, path, ev.metric_values[i]);
    }
    return s;
}

/* 5. The interface and the descriptor: the only symbol the plugin exports. */
static const gr_strategy_iface iface = {
    .struct_size = sizeof(gr_strategy_iface),
    .run = warmup_run,
    .config_keys = keys,
    .config_key_count = (int)(sizeof keys / sizeof keys[0]),
};

static const gr_plugin_descriptor descriptor = GR_PLUGIN_DESCRIPTOR(
    GR_PLUGIN_STRATEGY, "warmup-only", "train only the projector for N steps, then evaluate",
    &iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &descriptor; }

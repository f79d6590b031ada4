/* Template: a transfer-strategy plugin ("my-strategy").
 *
 * A strategy is a recipe over the training engine (graft/engine.h): which model roles to open
 * ("target", "source": configured under model.<role>.*), what to copy or load into what, which
 * tensors train at which learning rates, and which named stages run in which order. The engine
 * does everything else: data and batches, AdamW groups, schedules, accumulation, clipping, the
 * non-finite guard, FLOP accounting, the run log, checkpoints, evaluation and exact resume.
 *
 * This one runs a single stage, "main", on the target model with the train.* settings, except
 * that the trainable tensors come from its own key, then writes the stage's final loss to
 * report.json. Select it with `strategy.name = "my-strategy";`.
 *
 * What the core guarantees:
 *  - run() is called once per `graft train` (and again, from the top, by `graft train
 *    --resume`); the engine and every model it opens stay valid until run() returns;
 *  - keys declared in config_keys are validated in the run's config file, overridable with
 *    -s, and read back with gr_config_*() on gr_engine_config(e);
 *  - gr_engine_run_stage() of a stage that a resumed run already finished restores its result
 *    instead of training again; the stage in progress continues from its checkpoint.
 *
 * What this plugin must do:
 *  - issue the same stages in the same order on every run of the same configuration (decide
 *    only from configuration, never from results of a previous process);
 *  - return GR_ERR_INTERRUPTED from gr_engine_run_stage() unchanged (the run was stopped and
 *    saved; `graft train --resume` continues it);
 *  - keep every key under strategy.<its name>. with a default and one line of doc. */
#include "graft/engine.h"
#include "graft/plugin.h"
#include "graft/strategy.h"

static const gr_config_key keys[] = {
    {"strategy.my-strategy.trainable", GR_CFG_STRING_LIST, "[\"language_projection.*\"]",
     "fnmatch patterns of the tensors the stage trains (everything else is frozen)"},
};

static gr_status my_run(gr_engine *e)
{
    const gr_config *cfg = gr_engine_config(e);
    gr_engine_model *target;
    gr_status s = gr_engine_open_model(e, "target", &target);
    if (s != GR_OK) return s;

    /* Start from the train.* settings and change only what this recipe decides. */
    gr_stage_spec spec;
    gr_engine_stage_defaults(e, &spec);
    spec.name = "main";
    const char *patterns[16];
    int n = gr_config_list_count(cfg, "strategy.my-strategy.trainable");
    if (n < 1 || n > 16)
        return gr_fail(GR_ERR_INVALID, "%s: strategy.my-strategy.trainable needs 1 to 16 patterns",
                       gr_config_path(cfg));
    for (int i = 0; i < n; i++) patterns[i] = gr_config_list_string(cfg, "strategy.my-strategy.trainable", i);
    spec.trainable = patterns;
    spec.n_trainable = n;

    gr_stage_result res = {.struct_size = sizeof res};
    s = gr_engine_run_stage(e, target, &spec, &res);
    if (s != GR_OK) return s; /* GR_ERR_INTERRUPTED included: saved, resumable */
    return gr_engine_report_number(e, "my-strategy.final_loss", res.last_loss);
}

static const gr_strategy_iface iface = {
    .struct_size = sizeof(gr_strategy_iface),
    .run = my_run,
    .config_keys = keys,
    .config_key_count = (int)(sizeof keys / sizeof keys[0]),
};

static const gr_plugin_descriptor descriptor = GR_PLUGIN_DESCRIPTOR(
    GR_PLUGIN_STRATEGY, "my-strategy", "one stage training the configured tensors (template)",
    &iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &descriptor; }

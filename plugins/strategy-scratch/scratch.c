/* Plugin `scratch` (kind strategy): the baseline every transfer is measured against. One stage
 * named "scratch" on the target VLM with the train.* settings (by default the VPG — query
 * tokens, Q-Former, projector — trains; vision tower and LM stay frozen), evaluation as
 * configured, and optionally a final evaluation on data.test. */
#include <string.h>

#include "graft/engine.h"
#include "graft/plugin.h"
#include "graft/strategy.h"

static const gr_config_key scratch_keys[] = {
    {"strategy.scratch.test", GR_CFG_BOOL, "false", "evaluate on data.test after training"},
};

static gr_status scratch_run(gr_engine *e)
{
    gr_engine_model *m = NULL;
    gr_status s = gr_engine_open_model(e, "target", &m);
    if (s != GR_OK) return s;
    gr_stage_spec sp;
    gr_engine_stage_defaults(e, &sp);
    sp.name = "scratch";
    gr_stage_result r;
    s = gr_engine_run_stage(e, m, &sp, &r);
    if (s != GR_OK) return s;
    if (gr_config_bool(gr_engine_config(e), "strategy.scratch.test")) {
        gr_stage_result t;
        s = gr_engine_evaluate(e, m, sp.task, "test", &t);
    }
    return s;
}

static const gr_strategy_iface iface = {
    .struct_size = sizeof(gr_strategy_iface),
    .run = scratch_run,
    .config_keys = scratch_keys,
    .config_key_count = (int)(sizeof scratch_keys / sizeof scratch_keys[0]),
};

static const gr_plugin_descriptor desc =
    GR_PLUGIN_DESCRIPTOR(GR_PLUGIN_STRATEGY, "scratch", "train the target VLM's VPG from its configured init", &iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &desc; }

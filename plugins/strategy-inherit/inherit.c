/* Plugin `inherit` (kind strategy): the VPGTrans paper's naive baseline. The target takes the
 * source's VPG and keeps its own freshly initialised projector; no converter, no warm-up by
 * default (strategy.inherit.warmup_epochs = 1 gives the "random projector + warm-up"
 * ablation); then the train.* schedule. See docs/strategies.md. */
#include "graft/plugin.h"
#include "graft/strategy.h"
#include "graft/transfer.h"

static const gr_config_key keys[] = {GR_VPGTRANS_KEYS("inherit", "position", "5", "false", "0")};

static gr_status run(gr_engine *e) { return gr_transfer_run_vpgtrans(e, "inherit"); }

static const gr_strategy_iface iface = {
    .struct_size = sizeof(gr_strategy_iface),
    .run = run,
    .config_keys = keys,
    .config_key_count = (int)(sizeof keys / sizeof keys[0]),
};

static const gr_plugin_descriptor desc = GR_PLUGIN_DESCRIPTOR(
    GR_PLUGIN_STRATEGY, "inherit", "naive baseline: the source VPG with a fresh projector, then the train.* schedule", &iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &desc; }

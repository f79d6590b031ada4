/* Plugin `tas` (kind strategy): VPGTrans across sizes of one LLM family (Zhang et al., 2023).
 * The source VPG is inherited; the projector starts as the word converter (trained on the
 * caption tokens, which are identical ids in both vocabularies: position pairing) fused after
 * the source projector; stage 1 trains only the projector at 5x the base lr for one epoch;
 * stage 2 trains VPG + projector with the train.* schedule. See docs/strategies.md. */
#include "graft/plugin.h"
#include "graft/strategy.h"
#include "graft/transfer.h"

static const gr_config_key keys[] = {GR_VPGTRANS_KEYS("tas", "position", "5", "true", "1")};

static gr_status run(gr_engine *e) { return gr_transfer_run_vpgtrans(e, "tas"); }

static const gr_strategy_iface iface = {
    .struct_size = sizeof(gr_strategy_iface),
    .run = run,
    .config_keys = keys,
    .config_key_count = (int)(sizeof keys / sizeof keys[0]),
};

static const gr_plugin_descriptor desc = GR_PLUGIN_DESCRIPTOR(
    GR_PLUGIN_STRATEGY, "tas", "VPGTrans within a family: converter-fused projector, warm-up, fine-tune", &iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &desc; }

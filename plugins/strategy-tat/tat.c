/* Plugin `tat` (kind strategy): VPGTrans across LLM families (OPT <-> T5 <-> Llama). As `tas`,
 * but the converter's token pairs come from two tokenizers: captions tokenised by both and
 * paired by position where the counts match, united with the vocabulary entries whose decoded
 * strings are identical (strategy.tat.pairs), and 8 converter epochs as the original uses
 * across families. Where the soft prompt goes (decoder input or T5 encoder input) is the VLM's
 * business, not the strategy's. See docs/strategies.md. */
#include "graft/plugin.h"
#include "graft/strategy.h"
#include "graft/transfer.h"

static const gr_config_key keys[] = {GR_VPGTRANS_KEYS("tat", "union", "8", "true", "1")};

static gr_status run(gr_engine *e) { return gr_transfer_run_vpgtrans(e, "tat"); }

static const gr_strategy_iface iface = {
    .struct_size = sizeof(gr_strategy_iface),
    .run = run,
    .config_keys = keys,
    .config_key_count = (int)(sizeof keys / sizeof keys[0]),
};

static const gr_plugin_descriptor desc = GR_PLUGIN_DESCRIPTOR(
    GR_PLUGIN_STRATEGY, "tat", "VPGTrans across families: converter on two tokenizers' pairs, warm-up, fine-tune", &iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &desc; }

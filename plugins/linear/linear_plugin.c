/* Plugin `linear`: y = x W^T + b (BLIP-2's language_projection). See projector.c. */
#include "graft/plugin.h"
#include "projector.h"

static const gr_plugin_descriptor desc = GR_PLUGIN_DESCRIPTOR(
    GR_PLUGIN_PROJECTOR, "linear", "Linear projector (BLIP-2 language_projection)",
    &proj_linear_iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &desc; }

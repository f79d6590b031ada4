/* Plugin `mlp`: Linear-act-Linear projector (names 0.*, 2.* as nn.Sequential). See
 * plugins/linear/projector.c. */
#include "graft/plugin.h"
#include "projector.h"

static const gr_plugin_descriptor desc = GR_PLUGIN_DESCRIPTOR(
    GR_PLUGIN_PROJECTOR, "mlp", "MLP projector (Linear-GELU-Linear)", &proj_mlp_iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &desc; }

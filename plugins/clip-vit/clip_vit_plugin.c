/* Plugin `clip-vit`: HF CLIPVisionModel (see vit.c). */
#include "graft/plugin.h"
#include "vit.h"

static const gr_plugin_descriptor desc = GR_PLUGIN_DESCRIPTOR(
    GR_PLUGIN_VISION_ENCODER, "clip-vit",
    "CLIP vision tower (HF CLIPVisionModel): pixels -> patch tokens", &vit_clip_iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &desc; }

/* Plugin `blip2-vit`: HF Blip2VisionModel, the tower of real BLIP-2 checkpoints (see
 * plugins/clip-vit/vit.c, which implements both towers). */
#include "graft/plugin.h"
#include "vit.h"

static const gr_plugin_descriptor desc = GR_PLUGIN_DESCRIPTOR(
    GR_PLUGIN_VISION_ENCODER, "blip2-vit",
    "BLIP-2 vision tower (HF Blip2VisionModel: fused qkv, post-LayerNorm)", &vit_blip2_iface);

GR_PLUGIN_EXPORT const gr_plugin_descriptor *graft_plugin_entry(void) { return &desc; }

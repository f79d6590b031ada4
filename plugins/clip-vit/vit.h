/* The two ViT image towers: CLIP's (CLIPVisionModel) and HF BLIP-2's (Blip2VisionModel). They
 * differ only in details (pre-LN vs none, conv bias, fused qkv, post-LN on the whole output),
 * so one implementation serves both plugins. */
#ifndef GRAFT_PLUGINS_VIT_H
#define GRAFT_PLUGINS_VIT_H

#include "graft/model.h"

extern const gr_vision_iface vit_clip_iface;
extern const gr_vision_iface vit_blip2_iface;

#endif

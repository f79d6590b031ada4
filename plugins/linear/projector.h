/* The projector plugins `linear` and `mlp` share one implementation (projector.c). */
#ifndef GRAFT_PLUGINS_PROJECTOR_H
#define GRAFT_PLUGINS_PROJECTOR_H

#include "graft/model.h"

extern const gr_projector_iface proj_linear_iface;
extern const gr_projector_iface proj_mlp_iface;

#endif

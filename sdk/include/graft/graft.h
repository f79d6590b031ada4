/* graft — the whole SDK in one include.
 *
 * A plugin may include just the headers it needs; this one pulls in all of them:
 *   plugin.h    the ABI: version, descriptor, entry point, rules every struct follows
 *   status.h    gr_status and gr_fail(): how errors cross the ABI
 *   tensor.h    gr_tensor, dtypes, host conversions
 *   backend.h   the compute backend interface (kernels a backend implements)
 *   ops.h       gr_ctx, operations and autodiff (what model plugins write forward passes with)
 *   weights.h   safetensors checkpoints
 *   model.h     language-model, vision-encoder and projector interfaces
 *   config.h    declared configuration keys and typed access
 *   strategy.h  the transfer-strategy interface
 *   rng.h       the deterministic random generator
 * Everything declared here is exported by libgraft (link with `pkg-config --libs graft` or
 * the CMake target graft::graft). */
#ifndef GRAFT_GRAFT_H
#define GRAFT_GRAFT_H

#include "graft/plugin.h"
#include "graft/status.h"
#include "graft/tensor.h"
#include "graft/backend.h"
#include "graft/ops.h"
#include "graft/weights.h"
#include "graft/model.h"
#include "graft/config.h"
#include "graft/strategy.h"
#include "graft/rng.h"

#endif

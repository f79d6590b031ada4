/* graft — the transfer-strategy plugin kind.
 *
 * A strategy is a recipe over the training engine: which tensors are frozen, which learning
 * rates, which stages, and what to initialise from what. The engine (core) owns models, data,
 * optimizer, checkpoints, logs and evaluation; a strategy only configures and sequences it.
 * Its settings live under `strategy.<name>.*` and are declared in `config_keys`, so they are
 * validated and documented like every other key. */
#ifndef GRAFT_STRATEGY_H
#define GRAFT_STRATEGY_H

#include "graft/config.h"
#include "graft/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gr_engine gr_engine; /* the core training engine (graft/engine.h) */

typedef struct gr_strategy_iface {
    uint32_t struct_size;
    /* Runs the whole recipe (all stages, evaluation, report) on an engine built from the
     * run's configuration. Resumable: the engine tells which stage and step a resumed run is
     * in, and a strategy must not redo finished stages. */
    gr_status (*run)(gr_engine *engine);

    /* ---- optional ---- */
    const gr_config_key *config_keys;  /* declared keys under strategy.<name>.* */
    int config_key_count;
} gr_strategy_iface;

#ifdef __cplusplus
}
#endif
#endif

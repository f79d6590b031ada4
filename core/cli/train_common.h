/* Shared setup of `graft train`, `graft eval` and `graft generate`: the configuration (from -c/-s,
 * or a run directory's config.cfg), the engine's and the strategy's keys, validation, backend. */
#ifndef GRAFT_CLI_TRAIN_COMMON_H
#define GRAFT_CLI_TRAIN_COMMON_H

#include "graft/backend.h"
#include "graft/config.h"

/* Opens the configuration: -c/-s from argv (removed from it), or, when run_dir is given and no
 * -c was, run_dir/config.cfg with the -s overrides applied. Registers the engine's keys (the
 * plugin scan registers every strategy's), validates, and opens the backend. */
gr_status gr_cli_train_setup(int *argc, char **argv, const char *run_dir, gr_config **cfg, gr_backend **be);

#endif

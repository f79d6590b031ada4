/* Shared command-line handling of `-c FILE` and `-s KEY=VALUE`. */
#ifndef GRAFT_CLI_CONFIG_H
#define GRAFT_CLI_CONFIG_H

#include "graft/backend.h"
#include "graft/config.h"

/* Removes every -c/--config FILE and -s/--set KEY=VALUE from argv (compacting it and updating
 * *argc), loads the file (or defaults), applies the overrides in order, registers the core
 * schema and adds `plugin_path` to the plugin search path. Validation is left to the caller
 * (gr_config_validate) because plugins may declare more keys first. */
gr_status gr_cli_config_open(int *argc, char **argv, gr_config **out);

/* Backend options from backend.* keys. */
void gr_cli_backend_options(const gr_config *cfg, gr_backend_options *opt);

#endif

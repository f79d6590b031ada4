/* Shared command-line handling of `-c FILE` and `-s KEY=VALUE`. */
#ifndef GRAFT_CLI_CONFIG_H
#define GRAFT_CLI_CONFIG_H

#include "graft/backend.h"
#include "graft/config.h"

/* Removes every -c/--config FILE and -s/--set KEY=VALUE from argv (compacting it and updating
 * *argc), registers the core schema, loads the file (or defaults), adds `plugin_path` to the
 * plugin search path and scans it, and applies the overrides in order. Scanning registers
 * every strategy plugin's keys, so `-s strategy.NAME.KEY=V` works in every command; a command
 * registers its own keys before calling this (overrides are typed by the schema). Validation
 * is left to the caller (gr_config_validate). */
gr_status gr_cli_config_open(int *argc, char **argv, gr_config **out);
/* The same, loading `fallback` (a run directory's config.cfg) when argv has no -c. */
gr_status gr_cli_config_open_or(int *argc, char **argv, const char *fallback, gr_config **out);

/* Backend options from backend.* keys. */
void gr_cli_backend_options(const gr_config *cfg, gr_backend_options *opt);

#endif

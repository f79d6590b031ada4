#ifndef GRAFT_CORE_CONFIG_KEYS_H
#define GRAFT_CORE_CONFIG_KEYS_H

#include "graft/config.h"

/* Registers the core's own keys (plugin_path, backend.*). Idempotent. */
gr_status gr_config_core_schema(void);

#endif

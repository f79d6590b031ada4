#ifndef GRAFT_CORE_CONFIG_KEYS_H
#define GRAFT_CORE_CONFIG_KEYS_H

#include "graft/config.h"

/* Registers the core's own keys (plugin_path, backend.*). Idempotent. */
gr_status gr_config_core_schema(void);

/* Does `text` read as a value of `type` (file syntax, or the bare -s syntax)? On failure one
 * line "WHAT: expected TYPE, got 'TEXT'". gr_config_schema_add checks every default with it. */
gr_status gr_config_check_value(gr_config_type type, const char *text, const char *what);

#endif

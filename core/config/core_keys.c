/* Keys the core itself reads. */
#include "config/core_keys.h"

static const gr_config_key core_keys[] = {
    {"plugin_path", GR_CFG_STRING, "",
     "extra plugin directories (colon-separated), searched before GRAFT_PLUGIN_PATH"},
    {"backend.name", GR_CFG_STRING, "cpu", "compute backend plugin: cpu or vulkan"},
    {"backend.threads", GR_CFG_INT, "0", "worker threads (0: all cores)"},
    {"backend.device", GR_CFG_STRING, "", "device index or name substring (vulkan)"},
    {"backend.cache_dir", GR_CFG_STRING, "", "compiled-kernel cache directory (\"\": backend default)"},
    {"backend.debug_check", GR_CFG_BOOL, "false",
     "recompute every op on the CPU and stop at the first divergence (vulkan)"},
};

gr_status gr_config_core_schema(void)
{
    return gr_config_schema_add(core_keys, (int)(sizeof core_keys / sizeof core_keys[0]));
}

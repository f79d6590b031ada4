#include <string.h>

#include "cli_config.h"
#include "config/core_keys.h"
#include "plugin/registry.h"

gr_status gr_cli_config_open(int *argc, char **argv, gr_config **out)
{
    gr_status s = gr_config_core_schema();
    if (s != GR_OK) return s;
    const char *file = NULL;
    int n = *argc, w = 1;
    /* First pass: find the file (an override must apply on top of it, wherever it appears). */
    for (int i = 1; i < n; i++) {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= n) return gr_fail(GR_ERR_INVALID, "%s needs a file name", argv[i]);
            if (file) return gr_fail(GR_ERR_INVALID, "-c given twice ('%s' and '%s')", file, argv[i + 1]);
            file = argv[++i];
        } else if (strcmp(argv[i], "-s") == 0 || strcmp(argv[i], "--set") == 0) {
            if (i + 1 >= n) return gr_fail(GR_ERR_INVALID, "%s needs KEY=VALUE", argv[i]);
            i++;
        }
    }
    gr_config *cfg;
    s = gr_config_load(file, &cfg);
    if (s != GR_OK) return s;
    for (int i = 1; i < n; i++) {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
            i++;
        } else if (strcmp(argv[i], "-s") == 0 || strcmp(argv[i], "--set") == 0) {
            s = gr_config_override(cfg, argv[++i]);
            if (s != GR_OK) { gr_config_free(cfg); return s; }
        } else {
            argv[w++] = argv[i];
        }
    }
    argv[w] = NULL;
    *argc = w;
    gr_plugins_add_path(gr_config_string(cfg, "plugin_path"));
    *out = cfg;
    return GR_OK;
}

void gr_cli_backend_options(const gr_config *cfg, gr_backend_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->struct_size = sizeof *opt;
    opt->threads = (int)gr_config_int(cfg, "backend.threads");
    opt->device = gr_config_string(cfg, "backend.device");
    opt->cache_dir = gr_config_string(cfg, "backend.cache_dir");
    opt->debug_check = gr_config_bool(cfg, "backend.debug_check");
}

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "cli_config.h"
#include "train_common.h"
#include "graft/strategy.h"
#include "plugin/registry.h"
#include "train/engine_internal.h"

gr_status gr_cli_train_setup(int *argc, char **argv, const char *run_dir, gr_config **cfg, gr_backend **be)
{
    *cfg = NULL;
    *be = NULL;
    int has_c = 0, n_set = 0;
    const char *sets[64];
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0 || strncmp(argv[i], "--config=", 9) == 0) has_c = 1;
        if ((strcmp(argv[i], "-s") == 0 || strcmp(argv[i], "--set") == 0) && i + 1 < *argc && n_set < 64) sets[n_set++] = argv[i + 1];
        else if (strncmp(argv[i], "--set=", 6) == 0 && n_set < 64) sets[n_set++] = argv[i] + 6;
    }
    gr_status s = gr_engine_schema();
    if (s == GR_OK) s = gr_cli_config_open(argc, argv, cfg);
    if (s == GR_OK && run_dir && !has_c) {
        /* the run's resolved configuration, with the command line's -s applied again on top */
        char *path = gr_path_join(run_dir, "config.cfg");
        gr_config *rc = NULL;
        if (!path) s = gr_fail(GR_ERR_NOMEM, "out of memory");
        if (s == GR_OK && !gr_path_exists(path)) s = gr_fail(GR_ERR_NOT_FOUND, "%s: no such file (not a run directory?)", path);
        if (s == GR_OK) s = gr_config_load(path, &rc);
        for (int i = 0; s == GR_OK && i < n_set; i++) s = gr_config_override(rc, sets[i]);
        if (s != GR_OK) gr_config_free(rc);
        free(path);
        if (s == GR_OK) {
            gr_config_free(*cfg);
            *cfg = rc;
            gr_plugins_add_path(gr_config_string(rc, "plugin_path"));
        }
    }
    if (s == GR_OK) s = gr_plugins_scan();
    if (s == GR_OK) {
        const void *iface = NULL;
        const char *name = gr_config_string(*cfg, "strategy.name");
        if (gr_plugin_iface(GR_PLUGIN_STRATEGY, name, &iface) == GR_OK) {
            const gr_strategy_iface *st = iface;
            if (st->struct_size >= offsetof(gr_strategy_iface, config_key_count) + sizeof(int) && st->config_keys &&
                st->config_key_count > 0 && !gr_config_schema_find(st->config_keys[0].path))
                s = gr_config_schema_add(st->config_keys, st->config_key_count);
        }
    }
    if (s == GR_OK) s = gr_config_validate(*cfg);
    if (s == GR_OK) {
        gr_backend_options opt;
        gr_cli_backend_options(*cfg, &opt);
        s = gr_backend_open(gr_config_string(*cfg, "backend.name"), &opt, be);
    }
    if (s != GR_OK) {
        gr_config_free(*cfg);
        *cfg = NULL;
    }
    return s;
}

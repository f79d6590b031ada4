#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "cli_config.h"
#include "plugin/registry.h"
#include "train_common.h"
#include "train/engine_internal.h"

gr_status gr_cli_train_setup(int *argc, char **argv, const char *run_dir, gr_config **cfg, gr_backend **be)
{
    *cfg = NULL;
    *be = NULL;
    int has_c = 0;
    for (int i = 1; i < *argc; i++)
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) has_c = 1;
    char *fallback = NULL; /* without -c, a run directory's resolved configuration */
    gr_status s = gr_engine_schema();
    if (s == GR_OK && run_dir && !has_c) {
        fallback = gr_path_join(run_dir, "config.cfg");
        if (!fallback) s = gr_fail(GR_ERR_NOMEM, "out of memory");
        else if (!gr_path_exists(fallback))
            s = gr_fail(GR_ERR_NOT_FOUND, "%s: no such file (not a run directory?)", fallback);
    }
    /* plugins are scanned there, registering every strategy's keys before -s and validation */
    if (s == GR_OK) s = gr_cli_config_open_or(argc, argv, fallback, cfg);
    free(fallback);
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

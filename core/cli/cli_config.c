#include <stdlib.h>
#include <string.h>

#include "cli_config.h"
#include "config/core_keys.h"
#include "plugin/registry.h"
#include "train/engine_internal.h"

/* The key of a KEY=VALUE override, trimmed, into buf ("" when there is no '='). */
static const char *override_key(const char *assignment, char *buf, size_t cap)
{
    const char *eq = strchr(assignment, '=');
    size_t n = eq ? (size_t)(eq - assignment) : 0;
    while (n && (*assignment == ' ' || *assignment == '\t')) { assignment++; n--; }
    while (n && (assignment[n - 1] == ' ' || assignment[n - 1] == '\t')) n--;
    if (n >= cap) n = cap - 1;
    memcpy(buf, assignment, n);
    buf[n] = '\0';
    return buf;
}

gr_status gr_cli_config_open_or(int *argc, char **argv, const char *fallback, gr_config **out)
{
    /* One configuration file serves every command (graft plugins -c run.cfg must accept what
     * graft train accepts), so the engine's keys are declared for all of them. */
    gr_status s = gr_config_core_schema();
    if (s == GR_OK) s = gr_engine_schema();
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
    s = gr_config_load(file ? file : fallback, &cfg);
    if (s != GR_OK) return s;
    /* Overrides of keys declared now (the core's, the command's, plugin_path among them) apply
     * at once; the others may be a strategy plugin's, declared only when the plugins are
     * scanned, which needs plugin_path: they wait, in their order. Keys differ between the two
     * groups, so the result is the same as applying every override in order. */
    const char **later = malloc(sizeof *later * (size_t)(n + 1));
    if (!later) { gr_config_free(cfg); return gr_fail(GR_ERR_NOMEM, "out of memory"); }
    int n_later = 0;
    for (int i = 1; i < n && s == GR_OK; i++) {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
            i++;
        } else if (strcmp(argv[i], "-s") == 0 || strcmp(argv[i], "--set") == 0) {
            char key[512];
            const char *a = argv[++i];
            if (gr_config_schema_find(override_key(a, key, sizeof key))) s = gr_config_override(cfg, a);
            else later[n_later++] = a;
        } else {
            argv[w++] = argv[i];
        }
    }
    if (s == GR_OK) {
        argv[w] = NULL;
        *argc = w;
        /* Every command that reads a configuration knows every strategy's keys: a file or an
         * override may name them whatever the command. */
        gr_plugins_add_path(gr_config_string(cfg, "plugin_path"));
        s = gr_plugins_scan();
    }
    for (int i = 0; s == GR_OK && i < n_later; i++) s = gr_config_override(cfg, later[i]);
    free(later);
    if (s != GR_OK) { gr_config_free(cfg); return s; }
    *out = cfg;
    return GR_OK;
}

gr_status gr_cli_config_open(int *argc, char **argv, gr_config **out)
{
    return gr_cli_config_open_or(argc, argv, NULL, out);
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

#include <stdio.h>
#include <string.h>

#include "cli_config.h"
#include "commands.h"
#include "plugin/registry.h"

static int run_backends(int argc, char **argv)
{
    gr_config *cfg;
    if (gr_cli_config_open(&argc, argv, &cfg) != GR_OK) return gr_cli_error();
    if (gr_config_validate(cfg) != GR_OK) { gr_config_free(cfg); return gr_cli_error(); }
    gr_backend_options opt;
    gr_cli_backend_options(cfg, &opt);
    opt.verbose = 1;
    gr_plugins_scan();
    int found = 0, failed = 0;
    for (int i = 0; i < gr_plugins_count(); i++) {
        const gr_plugin *p = gr_plugins_at(i);
        if (p->desc->kind != GR_PLUGIN_BACKEND) continue;
        found++;
        printf("%s — %s\n", p->desc->name, p->desc->description);
        gr_backend *b;
        if (gr_backend_open(p->desc->name, &opt, &b) != GR_OK) {
            printf("  unavailable: %s\n", gr_last_error());
            failed++;
            continue;
        }
        char info[8192] = "";
        if (b->iface->describe(b->ctx, info, sizeof info) == GR_OK) {
            /* indent each line of the backend's description */
            for (char *line = strtok(info, "\n"); line; line = strtok(NULL, "\n"))
                printf("  %s\n", line);
        }
        gr_backend_close(b);
    }
    gr_config_free(cfg);
    if (!found) {
        fprintf(stderr, "graft: no backend plugin found (see 'graft plugins')\n");
        return 1;
    }
    (void)failed; /* an unavailable backend (no Vulkan device) is information, not failure */
    return 0;
}

const gr_command gr_cmd_backends = {
    "backends", run_backends, "list compute backends with their devices, threads and features",
    "usage: graft backends [-c FILE] [-s KEY=VALUE]...\n\n"
    "Opens every backend plugin with the backend.* settings (threads, device) and prints what it\n"
    "reports: devices, thread count, feature probes (fp16, subgroup size, cooperative matrix).\n"
    "A backend that cannot start here (e.g. no Vulkan device) is listed as unavailable with the\n"
    "reason.\n",
};

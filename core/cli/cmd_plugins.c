#include <stdio.h>

#include "cli_config.h"
#include "commands.h"
#include "plugin/registry.h"

static int run_plugins(int argc, char **argv)
{
    gr_config *cfg;
    if (gr_cli_config_open(&argc, argv, &cfg) != GR_OK) return gr_cli_error();
    if (gr_config_validate(cfg) != GR_OK) { gr_config_free(cfg); return gr_cli_error(); }
    if (argc > 1) {
        fprintf(stderr, "graft: plugins: unexpected argument '%s'\n", argv[1]);
        gr_config_free(cfg);
        return 2;
    }
    gr_plugins_scan();
    printf("%-15s %-16s %-5s %s\n", "KIND", "NAME", "ABI", "PATH");
    for (int i = 0; i < gr_plugins_count(); i++) {
        const gr_plugin *p = gr_plugins_at(i);
        printf("%-15s %-16s %u.%-3u %s\n", gr_plugin_kind_name((gr_plugin_kind)p->desc->kind),
               p->desc->name, p->desc->abi_major, p->desc->abi_minor, p->path);
    }
    for (int i = 0; i < gr_plugins_refused_count(); i++)
        fprintf(stderr, "graft: %s\n", gr_plugins_refused_at(i));
    gr_config_free(cfg);
    return 0;
}

const gr_command gr_cmd_plugins = {
    "plugins", run_plugins, "list the plugins found: kind, name, ABI version, path",
    "usage: graft plugins [-c FILE] [-s KEY=VALUE]...\n\n"
    "Lists every plugin graft can load, one line each: kind (backend, language-model,\n"
    "vision-encoder, projector, strategy), name, ABI version and file. Plugins are searched in\n"
    "the `plugin_path` config setting, then GRAFT_PLUGIN_PATH (colon-separated), then the\n"
    "plugin directory next to libgraft (lib/graft/plugins). Files that were refused (wrong ABI\n"
    "major version, no entry symbol, a descriptor or interface too small, a strategy whose\n"
    "config keys break the rules) are reported on stderr with the reason.\n",
};

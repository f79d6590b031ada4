/* `graft version`: program version and the plugin ABI it accepts. */
#include <stdio.h>

#include "commands.h"
#include "graft/plugin.h"

static int run_version(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "graft: version: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    printf("graft %s (plugin ABI %d.%d)\n", GRAFT_VERSION, GR_ABI_MAJOR, GR_ABI_MINOR);
    return 0;
}

const gr_command gr_cmd_version = {
    "version", run_version, "print graft's version and plugin ABI version",
    "usage: graft version   (or graft --version)\n\n"
    "Prints one line, `graft VERSION (plugin ABI MAJOR.MINOR)`. A plugin loads when it was\n"
    "built against the same ABI major version (any minor version: structs only grow at the\n"
    "end, and the host reads no field past a struct's struct_size). See docs/plugins.md.\n",
};

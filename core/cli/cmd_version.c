#include <stdio.h>

#include "commands.h"
#include "graft/plugin.h"

static int run_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("graft %s (plugin ABI %d.%d)\n", GRAFT_VERSION, GR_ABI_MAJOR, GR_ABI_MINOR);
    return 0;
}

const gr_command gr_cmd_version = {
    "version", run_version, "print graft's version and plugin ABI version",
    "usage: graft version\n\nPrints the program version and the plugin ABI version it accepts.\n",
};

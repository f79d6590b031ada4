#include <stdio.h>

#include "commands.h"

static int run_help(int argc, char **argv)
{
    if (argc >= 2) {
        const gr_command *cmd = gr_find_command(argv[1]);
        if (!cmd) {
            fprintf(stderr, "graft: help: unknown command '%s'\n", argv[1]);
            return 2;
        }
        return gr_cli_usage(cmd, 0);
    }
    printf("graft — move a trained vision module from one language model to another.\n\n"
           "usage: graft COMMAND [ARGS...]   (graft help COMMAND, or graft COMMAND --help)\n\n"
           "commands:\n");
    for (int i = 0; gr_commands[i]; i++)
        printf("  %-12s %s\n", gr_commands[i]->name, gr_commands[i]->summary);
    return 0;
}

const gr_command gr_cmd_help = {
    "help", run_help, "list the commands, or show one command's full usage",
    "usage: graft help [COMMAND]\n\n"
    "Without COMMAND, lists every command with a one-line summary. With COMMAND, prints its\n"
    "full usage (the same text as `graft COMMAND --help`).\n",
};

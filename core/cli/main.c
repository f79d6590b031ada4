/* graft: entry point; dispatches to the subcommand named by argv[1]. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        const gr_command *help = gr_find_command("help");
        help->run(1, (char *[]){"help", NULL});
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) name = "help";
    if (strcmp(name, "--version") == 0) name = "version";
    const gr_command *cmd = gr_find_command(name);
    if (!cmd) {
        fprintf(stderr, "graft: unknown command '%s' (see 'graft help')\n", argv[1]);
        return 2;
    }
    if (gr_cli_wants_help(argc - 1, argv + 1)) return gr_cli_usage(cmd, 0);
    return cmd->run(argc - 1, argv + 1);
}

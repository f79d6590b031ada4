/* The command table. Adding a subcommand: write cmd_NAME.c defining `const gr_command
 * gr_cmd_NAME`, declare it here and add it to the table (alphabetical). */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "graft/status.h"

extern const gr_command gr_cmd_help;
extern const gr_command gr_cmd_score;
extern const gr_command gr_cmd_version;

const gr_command *const gr_commands[] = {
    &gr_cmd_help,
    &gr_cmd_score,
    &gr_cmd_version,
    NULL,
};

const gr_command *gr_find_command(const char *name)
{
    for (int i = 0; gr_commands[i]; i++)
        if (strcmp(gr_commands[i]->name, name) == 0) return gr_commands[i];
    return NULL;
}

int gr_cli_error(void)
{
    const char *msg = gr_last_error();
    fprintf(stderr, "graft: %s\n", msg[0] ? msg : "failed");
    return 1;
}

int gr_cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return 1;
    return 0;
}

int gr_cli_usage(const gr_command *cmd, int status)
{
    fputs(cmd->usage, status == 0 ? stdout : stderr);
    return status;
}

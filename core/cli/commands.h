/* The subcommands of `graft`. Each lives in its own cmd_NAME.c and returns the process exit
 * status (0 success, 1 failure reported on stderr as one line, 2 usage error). */
#ifndef GRAFT_CLI_COMMANDS_H
#define GRAFT_CLI_COMMANDS_H

typedef struct gr_command {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand's name */
    const char *summary;               /* one line for `graft help` */
    const char *usage;                 /* full text for `graft help NAME` / `graft NAME --help` */
} gr_command;

extern const gr_command *const gr_commands[];
const gr_command *gr_find_command(const char *name);

/* Prints "graft: <message>" for the thread's last error and returns 1. */
int gr_cli_error(void);
/* True when argv holds -h or --help (then the caller prints its usage and returns 0). */
int gr_cli_wants_help(int argc, char **argv);
int gr_cli_usage(const gr_command *cmd, int status);

#endif

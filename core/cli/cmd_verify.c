/* `graft verify MODEL_DIR [CASE_FILE] [--backend NAME]`: compare graft with a fixture's
 * reference tensors (see core/verify/verify.h for the output contract). */
#include <stdio.h>
#include <string.h>

#include "cli_config.h"
#include "commands.h"
#include "verify/verify.h"

extern const gr_command gr_cmd_verify;

static int run_verify(int argc, char **argv)
{
    gr_config *cfg;
    if (gr_cli_config_open(&argc, argv, &cfg) != GR_OK) return gr_cli_error();
    const char *dir = NULL, *case_file = NULL, *backend = "cpu";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--backend") == 0 || strcmp(argv[i], "-b") == 0) {
            if (i + 1 >= argc) { gr_config_free(cfg); return gr_cli_usage(&gr_cmd_verify, 2); }
            backend = argv[++i];
        } else if (strncmp(argv[i], "--backend=", 10) == 0) {
            backend = argv[i] + 10;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "graft: verify: unknown option '%s'\n", argv[i]);
            gr_config_free(cfg);
            return 2;
        } else if (!dir) {
            dir = argv[i];
        } else if (!case_file) {
            case_file = argv[i];
        } else {
            gr_config_free(cfg);
            return gr_cli_usage(&gr_cmd_verify, 2);
        }
    }
    if (!dir) { gr_config_free(cfg); return gr_cli_usage(&gr_cmd_verify, 2); }
    int rc = gr_verify_main(dir, case_file, backend);
    gr_config_free(cfg);
    return rc;
}

const gr_command gr_cmd_verify = {
    "verify", run_verify, "compare a model's outputs and gradients with a reference case file",
    "usage: graft verify MODEL_DIR [CASE_FILE] [--backend NAME]\n\n"
    "Opens MODEL_DIR (config.json and model.safetensors or a sharded index) and CASE_FILE\n"
    "(default MODEL_DIR/case.safetensors). The tensors named in the case's `inputs` metadata are\n"
    "inputs; every other tensor is a reference graft computes. Prints `NAME REL_ERR ok|FAIL` per\n"
    "reference (relative error ||out-ref||/||ref||; < 1e-4 for outputs, < 1e-3 for gradients,\n"
    "integers exact) and last `verify: N passed, M failed`. Exit status 0 only when M is 0.\n",
};

/* `graft train -c CFG --run-dir DIR` / `graft train --resume RUN_DIR`: runs the configured
 * strategy plugin on the training engine (see docs/training.md). */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "dist/dist.h"
#include "plugin/registry.h"
#include "train/engine_internal.h"
#include "train/trainer.h"
#include "train_common.h"

extern const gr_command gr_cmd_train;

static int train_main(int argc, char **argv);

/* Data parallel under mpirun (docs/distributed.md): a rank that fails ends the job on every
 * rank with a message naming it, instead of leaving the others waiting on a collective. */
static int run_train(int argc, char **argv)
{
    if (gr_dist_init() != GR_OK) return gr_cli_error();
    int rc = train_main(argc, argv);
    if (rc != 0 && rc != 130 && gr_dist_world() > 1) gr_dist_abort(rc);
    gr_dist_finalize();
    return rc;
}

static int train_main(int argc, char **argv)
{
    if (gr_cli_wants_help(argc, argv)) return gr_cli_usage(&gr_cmd_train, 0);
    const char *run_dir = NULL, *resume = NULL;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--run-dir") == 0 || strcmp(argv[i], "--resume") == 0) && i + 1 < argc) {
            if (strcmp(argv[i], "--run-dir") == 0) run_dir = argv[i + 1];
            else resume = argv[i + 1];
            memmove(argv + i, argv + i + 2, sizeof *argv * (size_t)(argc - i - 2));
            argc -= 2;
            i--;
        }
    }
    if (resume && run_dir) {
        fprintf(stderr, "graft: train: give --run-dir DIR for a new run or --resume RUN_DIR, not both\n");
        return 2;
    }
    gr_config *cfg = NULL;
    gr_backend *be = NULL;
    if (gr_cli_train_setup(&argc, argv, resume, &cfg, &be) != GR_OK) return gr_cli_error();
    if (argc > 1) {
        fprintf(stderr, "graft: train: unexpected argument '%s' (see 'graft help train')\n", argv[1]);
        gr_config_free(cfg);
        gr_backend_close(be);
        return 2;
    }
    if (!resume && !run_dir) {
        fprintf(stderr, "graft: train: --run-dir DIR is required for a new run\n");
        gr_config_free(cfg);
        gr_backend_close(be);
        return 2;
    }
    gr_train_install_signal_handlers();
    gr_engine *e = NULL;
    gr_status s = gr_engine_create(cfg, be, resume ? resume : run_dir, resume != NULL, &e);
    if (s == GR_OK) s = gr_engine_run_strategy(e);
    gr_engine_free(e);
    gr_backend_close(be);
    if (s == GR_ERR_INTERRUPTED) {
        if (gr_dist_is_root()) fprintf(stderr, "graft: %s\n", gr_last_error());
        return 130;
    }
    if (s != GR_OK) return gr_cli_error();
    if (gr_dist_is_root()) fprintf(stderr, "graft: train: done (%s)\n", resume ? resume : run_dir);
    return 0;
}

const gr_command gr_cmd_train = {
    "train", run_train, "train a VLM with the configured strategy (scratch, tas, tat, ...)",
    "usage: graft train -c CFG [-s KEY=VALUE]... --run-dir DIR\n"
    "       graft train --resume RUN_DIR [-s KEY=VALUE]...\n\n"
    "Runs the strategy plugin named by strategy.name (default scratch) on the training engine.\n"
    "DIR gets config.cfg (resolved), metrics.jsonl, checkpoints/, stages/ and report.json.\n"
    "--resume continues a run from its latest checkpoint so exactly that the curves equal an\n"
    "uninterrupted run's (same backend and thread count). SIGINT/SIGTERM save a checkpoint and\n"
    "exit with status 130; a second signal kills at once. Keys: see docs/training.md.\n\n"
    "Data parallel: `mpirun -np N graft train ...` runs N ranks, each on its own shard of the\n"
    "data with data.batch_size samples (global batch N x data.batch_size); gradients are\n"
    "averaged with MPI and rank 0 alone writes the run directory. See docs/distributed.md.\n",
};

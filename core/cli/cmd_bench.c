/* `graft bench KIND [--backend NAME] [--threads N]`: dispatches to the benchmarks of bench.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli_config.h"
#include "commands.h"
#include "plugin/registry.h"

static const gr_bench benches[] = {
    {"matmul", "backend matmul vs plain cblas_sgemm on OPT-125M layer shapes", gr_bench_matmul},
    {"step", "frozen-LM VPG training step on an OPT-125M-shaped model vs the sgemm ceiling", gr_bench_step},
    {"memory", "peak RSS of a Llama-7B-shaped BF16 forward vs the checkpoint size", gr_bench_memory},
};

extern const gr_command gr_cmd_bench;

static int run_bench(int argc, char **argv)
{
    if (gr_cli_wants_help(argc, argv) || argc < 2) return gr_cli_usage(&gr_cmd_bench, argc < 2 ? 2 : 0);
    const gr_bench *b = NULL;
    for (size_t i = 0; i < sizeof benches / sizeof *benches; i++)
        if (strcmp(argv[1], benches[i].name) == 0) b = &benches[i];
    if (!b) {
        fprintf(stderr, "graft: bench: unknown benchmark '%s' (try: graft help bench)\n", argv[1]);
        return 2;
    }
    gr_config *cfg;
    if (gr_cli_config_open(&argc, argv, &cfg) != GR_OK) return gr_cli_error();
    if (gr_config_validate(cfg) != GR_OK) {
        gr_config_free(cfg);
        return gr_cli_error();
    }
    gr_backend_options opt;
    gr_cli_backend_options(cfg, &opt);
    const char *name = "cpu";
    /* Our own flags; everything else is passed on to the benchmark. */
    int out = 2;
    for (int i = 2; i < argc; i++) {
        if ((strcmp(argv[i], "--backend") == 0 || strcmp(argv[i], "--threads") == 0) && i + 1 < argc) {
            if (argv[i][2] == 'b') name = argv[i + 1];
            else {
                char *end;
                long t = strtol(argv[i + 1], &end, 10);
                if (*end || t < 0 || t > 4096) {
                    fprintf(stderr, "graft: bench: --threads '%s' is not a thread count\n", argv[i + 1]);
                    gr_config_free(cfg);
                    return 2;
                }
                opt.threads = (int)t;
            }
            i++;
        } else {
            argv[out++] = argv[i];
        }
    }
    argc = out;
    gr_plugins_scan();
    gr_backend *be;
    if (gr_backend_open(name, &opt, &be) != GR_OK) {
        gr_config_free(cfg);
        return gr_cli_error();
    }
    gr_bench_env env = {be, name, opt.threads, cfg};
    int rc = b->run(&env, argc - 1, argv + 1);
    gr_backend_close(be);
    gr_config_free(cfg);
    return rc;
}

const gr_command gr_cmd_bench = {
    "bench", run_bench, "measure speed and memory (bench matmul | step | memory)",
    "usage: graft bench matmul [--backend NAME] [--threads N] [--min-time SEC] [-c FILE] [-s KEY=VALUE]...\n"
    "       graft bench step [--backend NAME] [--threads N] [--profile] [--steps N] [--warmup N] [--keep DIR]\n"
    "                        [--dir PARENT] [--dtype F32|F16|BF16] [--min-time SEC] [--layers N] [--hidden N]\n"
    "                        [--heads N] [--ffn N] [--vocab N] [--batch N] [--prefix N] [--seq N]\n"
    "       graft bench memory [--backend NAME] [--threads N] [--dir PARENT] [--limit R] [--tokens N]\n"
    "                          [--dtype BF16] [--layers N] [--hidden N] [--heads N] [--ffn N] [--vocab N]\n\n"
    "matmul: GFLOP/s of the backend's matmul on the shapes of an OPT-125M layer (768x768,\n"
    "768x3072, 3072x768 weights against 384 rows) in the three orientations a training step\n"
    "uses (forward x W^T, dX = dY W, dW = dY^T X), beside a plain cblas_sgemm of the same shapes\n"
    "in the same run. The last line is\n"
    "  bench matmul: G GFLOP/s, C GFLOP/s sgemm, R ratio\n"
    "with totals over all shapes (total flops / total time). --threads defaults to\n"
    "backend.threads (0 = all cores). Each product is timed for at least --min-time seconds\n"
    "(default 0.25; 0 = one call, for tests).\n\n"
    "step: the frozen-LM VPG training step on an OPT-125M-shaped LM (12 layers, hidden 768, 12 heads,\n"
    "ffn 3072, vocab 50272; random weights written as a HF directory in a temporary directory under\n"
    "--dir, default $TMPDIR or /tmp, and loaded through the opt plugin): batch 4 x (32 soft-prompt\n"
    "vectors + 64 text tokens), HF's causal loss on the text, gradient to the soft prompt only.\n"
    "Prints the step times (median of --steps, default 5, after --warmup 1), tokens/s, GFLOP/s (matmul\n"
    "FLOPs from gr_ctx_flops) and the ratio to the sgemm ceiling (bench matmul's plain cblas_sgemm figure,\n"
    "measured in the same process before and after the steps; the higher is used). --profile adds\n"
    "per-kernel times. --keep DIR writes the model and inputs.safetensors to DIR and keeps them\n"
    "(tests/bench/torch_step.py runs the identical step from them). The last line is\n"
    "  bench step: G GFLOP/s, P% of sgemm ceiling\n\n"
    "memory: writes a Llama-7B-shaped BF16 checkpoint (32 layers, hidden 4096, ffn 11008, 32 heads,\n"
    "vocab 32000, ~13.5 GB; fewer layers if the file system under --dir lacks room, said in the output),\n"
    "runs the forward of one sequence of --tokens (16) without gradients and reports the peak RSS of\n"
    "opening + forward against the file size, then deletes the checkpoint. Fails when the ratio reaches\n"
    "--limit (1.2). The last line is\n"
    "  bench memory: peak RSS X GB, R x file size (limit L)\n",
};

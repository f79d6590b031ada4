/* `graft surrogate analyze|build`: the surrogate tools of zero-shot grafting (see
 * core/transfer/surrogate.h and docs/surrogate.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "cli_config.h"
#include "commands.h"
#include "transfer/surrogate.h"

extern const gr_command gr_cmd_surrogate;

#define MAX_RANGES 64

static int bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "graft: surrogate: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see 'graft help surrogate')\n");
    return 2;
}

static int parse_i64(const char *flag, const char *v, int64_t min, int64_t *out)
{
    char *end;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || x < min) {
        fprintf(stderr, "graft: surrogate: %s '%s': expected an integer >= %lld\n", flag, v, (long long)min);
        return 0;
    }
    *out = x;
    return 1;
}

static int run_analyze(int argc, char **argv, gr_config *cfg)
{
    gr_surrogate_analyze_opts o;
    memset(&o, 0, sizeof o);
    const char *out_dir = "surrogate-analysis";
    int64_t v;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (strcmp(a, "--data") == 0 && has) o.corpus = argv[++i];
        else if (strcmp(a, "--tokenizer") == 0 && has) o.tokenizer_dir = argv[++i];
        else if (strcmp(a, "--out") == 0 && has) out_dir = argv[++i];
        else if (strcmp(a, "--backend") == 0 && has) o.backend = argv[++i];
        else if (strcmp(a, "--max-tokens") == 0 && has) {
            if (!parse_i64(a, argv[++i], 1, &v)) return 2;
            o.max_tokens = v;
        } else if (strcmp(a, "--max-seq") == 0 && has) {
            if (!parse_i64(a, argv[++i], 3, &v)) return 2;
            o.max_seq = v;
        } else if (strcmp(a, "--batch") == 0 && has) {
            if (!parse_i64(a, argv[++i], 1, &v) || v > 4096) return 2;
            o.batch = (int)v;
        } else if (a[0] == '-') return bad_usage("analyze: unknown option or missing value '%s'", a);
        else if (!o.target_dir) o.target_dir = a;
        else return bad_usage("analyze: unexpected argument '%s'", a);
    }
    if (!o.target_dir || !o.corpus) return bad_usage("analyze: %s", "needs TARGET_DIR and --data CORPUS");
    if (!o.max_tokens) o.max_tokens = 50000;
    gr_backend_options bo;
    gr_cli_backend_options(cfg, &bo);
    if (!o.backend) o.backend = gr_config_string(cfg, "backend.name");
    o.backend_options = &bo;
    gr_trajectory t;
    if (gr_surrogate_analyze(&o, &t) != GR_OK) return gr_cli_error();
    gr_transition tr;
    gr_trajectory_transition(&t, &tr);
    printf("prediction trajectory of %s: %lld texts, %lld predicted tokens", o.target_dir, (long long)t.texts,
           (long long)t.tokens);
    if (t.skipped) printf(" (%lld texts too short)", (long long)t.skipped);
    printf("\n%5s  %12s  %12s  %12s\n", "layer", "KL(last||l)", "drop", "mean log p");
    for (int l = 0; l <= t.num_layers; l++) {
        printf("%5d  %12.6f  ", l, t.kl[l]);
        if (l < t.num_layers) printf("%12.6f", t.kl[l] - t.kl[l + 1]);
        else printf("%12s", "-");
        printf("  %12.4f%s\n", t.mean_logp[l], l == tr.layer ? "  <- largest drop" : "");
    }
    printf("%s\n", tr.reason);
    if (tr.has_range) printf("proposed: graft surrogate build %s --range %d:%d --out DIR\n", o.target_dir, tr.range.a,
                             tr.range.b);
    gr_status s = gr_mkdirs(out_dir);
    char *jp = gr_path_join(out_dir, "trajectory.json"), *pp = gr_path_join(out_dir, "trajectory.png");
    if (s == GR_OK && (!jp || !pp)) s = gr_fail(GR_ERR_NOMEM, "out of memory");
    if (s == GR_OK) s = gr_trajectory_write_json(jp, o.target_dir, &t, &tr);
    char title[512];
    snprintf(title, sizeof title, "prediction trajectory: %s", o.target_dir);
    if (s == GR_OK) s = gr_trajectory_plot(pp, title, &t, &tr);
    if (s == GR_OK) printf("wrote %s and %s\n", jp, pp);
    free(jp);
    free(pp);
    gr_trajectory_free(&t);
    return s == GR_OK ? 0 : gr_cli_error();
}

static int run_build(int argc, char **argv)
{
    const char *target = NULL, *out = NULL;
    gr_surrogate_range ranges[MAX_RANGES];
    int n = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--range") == 0 && i + 1 < argc) {
            if (n == MAX_RANGES) return bad_usage("build: more than %s ranges", "64");
            if (gr_surrogate_parse_range(argv[++i], "--range", &ranges[n++]) != GR_OK) return gr_cli_error();
        } else if (strcmp(a, "--out") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if (a[0] == '-') {
            return bad_usage("build: unknown option or missing value '%s'", a);
        } else if (!target) {
            target = a;
        } else {
            return bad_usage("build: unexpected argument '%s'", a);
        }
    }
    if (!target || !out) return bad_usage("build: %s", "needs TARGET_DIR and --out DIR");
    gr_surrogate_layout lay;
    if (gr_surrogate_build(target, ranges, n, out, &lay) != GR_OK) return gr_cli_error();
    printf("surrogate of %s: %d of %d layers kept, written to %s\n", target, lay.num_kept, lay.num_layers, out);
    printf("  kept original layers:");
    for (int p = 0; p < lay.num_kept; p++) printf(" %d", lay.kept[p]);
    printf("\n");
    for (int i = 0; i < lay.num_translators; i++)
        printf("  translator: surrogate layer %d = original layer %d\n", lay.translators[i],
               lay.kept[lay.translators[i]]);
    gr_surrogate_layout_free(&lay);
    return 0;
}

static int run_surrogate(int argc, char **argv)
{
    if (argc < 2) return gr_cli_usage(&gr_cmd_surrogate, 2);
    gr_config *cfg;
    if (gr_cli_config_open(&argc, argv, &cfg) != GR_OK) return gr_cli_error();
    if (gr_config_validate(cfg) != GR_OK) {
        gr_config_free(cfg);
        return gr_cli_error();
    }
    int rc;
    if (strcmp(argv[1], "analyze") == 0) rc = run_analyze(argc, argv, cfg);
    else if (strcmp(argv[1], "build") == 0) rc = run_build(argc, argv);
    else rc = bad_usage("unknown subcommand '%s' (analyze or build)", argv[1]);
    gr_config_free(cfg);
    return rc;
}

const gr_command gr_cmd_surrogate = {
    "surrogate", run_surrogate, "surrogate LMs for zero-shot grafting: analyze the prediction trajectory, build",
    "usage: graft surrogate analyze TARGET_DIR --data CORPUS [--tokenizer DIR] [--max-tokens N]\n"
    "                               [--max-seq N] [--batch B] [--backend NAME] [--out DIR]\n"
    "       graft surrogate build TARGET_DIR --range a:b [--range c:d]... --out DIR\n\n"
    "analyze: the layer-wise prediction trajectory of a decoder-only LM (llama, opt): the final\n"
    "norm and LM head applied to every layer's hidden state (logit lens) give the probability of\n"
    "each ground-truth next token; renormalised over a text's positions and compared with the\n"
    "last layer's as KL(last || layer), averaged over the texts of CORPUS (one per line, the\n"
    "tokenizer of TARGET_DIR unless --tokenizer; at most --max-tokens tokens, default 50000, texts\n"
    "cut to --max-seq tokens, default 256). Prints the table and the proposed translator range\n"
    "(the rule is in docs/surrogate.md; a curve without an abrupt drop says so), and writes\n"
    "DIR/trajectory.json and DIR/trajectory.png (default DIR: surrogate-analysis).\n\n"
    "build: writes the surrogate as a Hugging Face directory of the target's family: layers\n"
    "0..a-1 kept, layer a kept as the translator, a+1..b-1 dropped, b..L-1 kept, renumbered;\n"
    "embeddings, final norm and head inherited; tensors copied byte for byte; tokenizer files\n"
    "copied; surrogate.json records the kept original layers and the translator positions.\n"
    "Without --range the surrogate is the target itself. Ranges must satisfy 0 <= a < b <= L and\n"
    "must not overlap.\n",
};

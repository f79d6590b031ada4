/* `graft generate -c CFG --image X.png [--prompt "Question: {} Answer:"] [--chat]`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "image/image.h"
#include "train/engine_internal.h"
#include "plugin/registry.h"
#include "train_common.h"

extern const gr_command gr_cmd_generate;

static gr_status load_image(gr_engine_model *m, const char *path, float **px, int *h, int *w)
{
    gr_image_preproc pp;
    gr_status s = gr_engine_model_preproc(m, &pp);
    if (s == GR_OK) s = gr_image_preproc_output_size(&pp, h, w);
    gr_image img = {0};
    if (s == GR_OK) s = gr_image_load(path, &img);
    if (s == GR_OK && !(*px = malloc(sizeof(float) * 3 * (size_t)*h * (size_t)*w))) s = gr_fail(GR_ERR_NOMEM, "out of memory");
    gr_image_augment none = {0};
    if (s == GR_OK) s = gr_image_preprocess(&pp, &none, 0, &img, *px);
    gr_image_free(&img);
    return s;
}

static gr_status say(gr_engine_model *m, const float *px, int h, int w, const char *prompt, const gr_vlm_gen *gen, char **text)
{
    gr_ctx *ctx = gr_engine_model_ctx(m);
    gr_ctx_reset(ctx);
    const char *p[1] = {prompt};
    gr_status s = gr_vlm_generate(gr_engine_model_vlm(m), ctx, gr_engine_model_tokenizer(m), px, NULL, 1, h, w, p,
                                  &gen->search, text);
    gr_ctx_reset(ctx);
    return s;
}

static int run_generate(int argc, char **argv)
{
    if (gr_cli_wants_help(argc, argv)) return gr_cli_usage(&gr_cmd_generate, 0);
    const char *image = NULL, *prompt = NULL, *ckpt = NULL;
    int chat = 0;
    for (int i = 1; i < argc; i++) {
        const char **dst = strcmp(argv[i], "--image") == 0 ? &image : strcmp(argv[i], "--prompt") == 0 ? &prompt
                           : strcmp(argv[i], "--checkpoint") == 0 ? &ckpt : NULL;
        int take = dst ? 2 : strcmp(argv[i], "--chat") == 0 ? 1 : 0;
        if (!take) continue;
        if (dst && i + 1 >= argc) return gr_cli_usage(&gr_cmd_generate, 2);
        if (dst) *dst = argv[i + 1];
        else chat = 1;
        memmove(argv + i, argv + i + take, sizeof *argv * (size_t)(argc - i - take));
        argc -= take;
        i--;
    }
    if (!image) {
        fprintf(stderr, "graft: generate: --image X.png is required\n");
        return 2;
    }
    gr_config *cfg = NULL;
    gr_backend *be = NULL;
    if (gr_cli_train_setup(&argc, argv, ckpt, &cfg, &be) != GR_OK) return gr_cli_error();
    if (argc > 1) {
        fprintf(stderr, "graft: generate: unexpected argument '%s'\n", argv[1]);
        gr_config_free(cfg);
        gr_backend_close(be);
        return 2;
    }
    gr_engine *e = NULL;
    gr_engine_model *m = NULL;
    float *px = NULL;
    int h = 0, w = 0;
    gr_vlm_gen gen;
    gr_status s = gr_engine_create_bare(cfg, be, &e);
    if (s == GR_OK) s = gr_engine_open_model(e, "target", &m);
    if (s == GR_OK && ckpt) s = gr_engine_load_params(m, ckpt, "*", NULL);
    if (s == GR_OK) s = load_image(m, image, &px, &h, &w);
    /* a prompt (or a chat) asks questions: VQA settings; no prompt: a caption */
    if (s == GR_OK) s = gr_engine_gen_config(e, m, (prompt || chat) ? "vqa" : "caption", &gen);
    if (s == GR_OK && !chat) {
        char *text = NULL, *filled = gr_prompt_fill(prompt ? prompt : gen.prompt, "");
        s = filled ? say(m, px, h, w, filled, &gen, &text) : gr_fail(GR_ERR_NOMEM, "out of memory");
        if (s == GR_OK) printf("%s\n", text);
        free(text);
        free(filled);
    } else if (s == GR_OK) {
        /* Multi-turn: each stdin line is a question; the conversation so far is the prompt of
         * the next turn ("Question: q1 Answer: a1 Question: q2 Answer:"), about one image. */
        const char *tmpl = prompt ? prompt : gen.prompt;
        char line[4096];
        char *history = strdup("");
        while (s == GR_OK && history && fgets(line, sizeof line, stdin)) {
            line[strcspn(line, "\r\n")] = '\0';
            if (!line[0]) continue;
            char *turn = gr_prompt_fill(tmpl, line), *text = NULL;
            size_t n = strlen(history) + (turn ? strlen(turn) : 0) + 2;
            char *full = malloc(n);
            if (!turn || !full) s = gr_fail(GR_ERR_NOMEM, "out of memory");
            if (s == GR_OK) {
                snprintf(full, n, "%s%s%s", history, history[0] ? " " : "", turn);
                s = say(m, px, h, w, full, &gen, &text);
            }
            if (s == GR_OK) {
                printf("%s\n", text);
                fflush(stdout);
                size_t hn = strlen(full) + strlen(text) + 2;
                char *nh = malloc(hn);
                if (nh) snprintf(nh, hn, "%s %s", full, text);
                free(history);
                history = nh;
            }
            free(turn); free(full); free(text);
        }
        if (!history && s == GR_OK) s = gr_fail(GR_ERR_NOMEM, "out of memory");
        free(history);
    }
    free(px);
    gr_engine_free(e);
    gr_backend_close(be);
    return s == GR_OK ? 0 : gr_cli_error();
}

const gr_command gr_cmd_generate = {
    "generate", run_generate, "describe an image or answer questions about it with a VLM",
    "usage: graft generate [-c CFG] [-s KEY=VALUE]... [--checkpoint RUN_DIR|FILE] --image X.png\n"
    "                      [--prompt \"Question: {} Answer:\"] [--chat]\n\n"
    "Without --prompt prints a caption (gen.* settings, empty prompt). With --prompt the text\n"
    "(\"{}\" removed) is the prompt, generated with the VQA settings (gen.vqa_*). --chat reads one\n"
    "question per stdin line and answers each, keeping the conversation about the image as the\n"
    "next prompt (the template is --prompt or gen.vqa_prompt). Works without a terminal.\n",
};

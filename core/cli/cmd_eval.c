/* `graft eval -c CFG --checkpoint RUN_DIR`: generates for an evaluation split and scores it
 * (CIDEr/BLEU/ROUGE-L for captions, VQA accuracy), writing a JSON report. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fsutil.h"
#include "commands.h"
#include "train/engine_internal.h"
#include "plugin/registry.h"
#include "train_common.h"

extern const gr_command gr_cmd_eval;

static int run_eval(int argc, char **argv)
{
    if (gr_cli_wants_help(argc, argv)) return gr_cli_usage(&gr_cmd_eval, 0);
    const char *ckpt = NULL, *split = "val", *out = NULL;
    int blind = 0;
    for (int i = 1; i < argc; i++) {
        const char **dst = strcmp(argv[i], "--checkpoint") == 0 ? &ckpt : strcmp(argv[i], "--split") == 0 ? &split
                           : strcmp(argv[i], "--out") == 0 ? &out : NULL;
        int take = dst ? 2 : strcmp(argv[i], "--blind") == 0 ? 1 : 0;
        if (!take) continue;
        if (dst && i + 1 >= argc) return gr_cli_usage(&gr_cmd_eval, 2);
        if (dst) *dst = argv[i + 1];
        else blind = 1;
        memmove(argv + i, argv + i + take, sizeof *argv * (size_t)(argc - i - take));
        argc -= take;
        i--;
    }
    gr_config *cfg = NULL;
    gr_backend *be = NULL;
    if (gr_cli_train_setup(&argc, argv, ckpt, &cfg, &be) != GR_OK) return gr_cli_error();
    if (argc > 1) {
        fprintf(stderr, "graft: eval: unexpected argument '%s' (see 'graft help eval')\n", argv[1]);
        gr_config_free(cfg);
        gr_backend_close(be);
        return 2;
    }
    gr_engine *e = NULL;
    gr_engine_model *m = NULL;
    gr_vlm_eval_out res = {0};
    char key[64];
    snprintf(key, sizeof key, "data.%s", split);
    gr_status s = gr_engine_create_bare(cfg, be, &e);
    const char *path = "";
    if (s == GR_OK && (strcmp(split, "val") != 0 && strcmp(split, "test") != 0))
        s = gr_fail(GR_ERR_INVALID, "eval: --split must be val or test, not '%s'", split);
    if (s == GR_OK && !(path = gr_config_string(cfg, key))[0]) s = gr_fail(GR_ERR_INVALID, "%s: no annotations configured", key);
    if (s == GR_OK) s = gr_engine_open_model(e, "target", &m);
    if (s == GR_OK && ckpt) s = gr_engine_load_params(m, ckpt, "*", NULL);
    const char *task = s == GR_OK ? gr_config_string(cfg, "train.task") : "";
    if (s == GR_OK) s = gr_engine_eval_file(e, m, task, path, blind, &res);
    char *out_path = NULL;
    if (s == GR_OK) {
        char name[64];
        snprintf(name, sizeof name, "eval_%s%s.json", split, blind ? "_blind" : "");
        out_path = out ? strdup(out) : ckpt ? gr_path_join(ckpt, name) : strdup(name);
        json_t *o = json_object(), *ms = json_object(), *preds = json_array();
        json_object_set_new(o, "split", json_string(split));
        json_object_set_new(o, "annotations", json_string(path));
        json_object_set_new(o, "task", json_string(task));
        json_object_set_new(o, "blind", json_boolean(blind));
        if (ckpt) json_object_set_new(o, "checkpoint", json_string(ckpt));
        for (int i = 0; i < res.eval.count; i++) {
            json_object_set_new(ms, res.eval.metrics[i].name, json_real(res.eval.metrics[i].value));
            printf("%s %.6f\n", res.eval.metrics[i].name, res.eval.metrics[i].value);
        }
        json_object_set_new(o, "metrics", ms);
        for (size_t i = 0; i < res.n; i++) json_array_append_new(preds, json_string(res.preds[i]));
        json_object_set_new(o, "predictions", preds);
        char *txt = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        json_decref(o);
        s = txt ? gr_write_file_atomic(out_path, txt, strlen(txt)) : gr_fail(GR_ERR_NOMEM, "out of memory");
        free(txt);
        if (s == GR_OK) fprintf(stderr, "graft: eval: wrote %s\n", out_path);
    }
    free(out_path);
    gr_vlm_eval_out_free(&res);
    gr_engine_free(e);
    gr_backend_close(be);
    return s == GR_OK ? 0 : gr_cli_error();
}

const gr_command gr_cmd_eval = {
    "eval", run_eval, "evaluate a trained VLM (CIDEr/BLEU/ROUGE-L or VQA accuracy) into a JSON report",
    "usage: graft eval [-c CFG] [-s KEY=VALUE]... [--checkpoint RUN_DIR|FILE] [--split val|test]\n"
    "                  [--out FILE] [--blind]\n\n"
    "Opens model.target, loads the trained tensors of RUN_DIR's latest checkpoint (or of a\n"
    "safetensors FILE), generates for data.val or data.test with gen.* settings and scores the\n"
    "predictions as pycocoevalcap (captions) or the VQA evaluation (VQA) does. Without -c the\n"
    "run's config.cfg is used. Prints `METRIC VALUE` lines and writes the metrics and the\n"
    "predictions to FILE (default RUN_DIR/eval_SPLIT.json). --blind replaces every image with a\n"
    "blank one (the blind baseline).\n",
};

/* Config files against the schema: defaults, overrides, unknown keys, wrong types, syntax
 * errors, each with a one-line message naming file:line or the key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "graft/config.h"

static int failures, checks;

static void check(int cond, const char *what)
{
    checks++;
    if (!cond) failures++;
    printf("%s %s\n", cond ? "ok  " : "FAIL", what);
}

static const gr_config_key keys[] = {
    {"train.lr", GR_CFG_FLOAT, "1e-4", "learning rate"},
    {"train.epochs", GR_CFG_INT, "10", "epochs"},
    {"train.name", GR_CFG_STRING, "run", "name"},
    {"train.amp", GR_CFG_BOOL, "false", "mixed precision"},
    {"train.stages", GR_CFG_STRING_LIST, "[\"a\", \"b\"]", "stages"},
    {"train.betas", GR_CFG_FLOAT_LIST, "[0.9, 0.999]", "betas"},
    {"model.dir", GR_CFG_STRING, NULL, "model directory"},
};

static char *write_tmp(const char *text)
{
    static char paths[16][64];
    static int n;
    char *path = paths[n % 16];
    snprintf(path, 64, "/tmp/graft_test_config_%d_%d.cfg", (int)getpid(), n++);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static gr_status load_validate(const char *text, gr_config **out, char **path)
{
    *path = write_tmp(text);
    gr_status s = gr_config_load(*path, out);
    if (s == GR_OK) {
        s = gr_config_validate(*out);
        if (s != GR_OK) { gr_config_free(*out); *out = NULL; }
    }
    return s;
}

static int msg_has(const char *a, const char *b)
{
    const char *m = gr_last_error();
    return strstr(m, a) && (!b || strstr(m, b)) && !strchr(m, '\n');
}

int main(void)
{
    check(gr_config_schema_add(keys, 7) == GR_OK, "schema registers");
    static const gr_config_key dup[] = {{"train.lr", GR_CFG_INT, "1", "again"}};
    check(gr_config_schema_add(dup, 1) == GR_ERR_INVALID && msg_has("train.lr", "twice"),
          "a key declared twice is refused");

    gr_config *cfg;
    char *path;
    check(load_validate("train = { epochs = 3; lr = 2; };\nmodel = { dir = \"/m\"; };\n", &cfg, &path) == GR_OK,
          "valid file loads");
    check(gr_config_int(cfg, "train.epochs") == 3, "int from file");
    check(gr_config_float(cfg, "train.lr") == 2.0, "int accepted where a float is declared");
    check(strcmp(gr_config_string(cfg, "train.name"), "run") == 0, "string default");
    check(gr_config_bool(cfg, "train.amp") == 0, "bool default");
    check(gr_config_list_count(cfg, "train.stages") == 2 &&
              strcmp(gr_config_list_string(cfg, "train.stages", 1), "b") == 0, "list default");
    check(gr_config_list_float(cfg, "train.betas", 1) == 0.999, "float list default");
    check(gr_config_override(cfg, "train.lr=1e-3") == GR_OK && gr_config_float(cfg, "train.lr") == 1e-3,
          "override with scientific notation");
    check(gr_config_override(cfg, "train.name=/a path/x") == GR_OK &&
              strcmp(gr_config_string(cfg, "train.name"), "/a path/x") == 0, "bare string override");
    check(gr_config_override(cfg, "train.stages=x,y,z") == GR_OK &&
              gr_config_list_count(cfg, "train.stages") == 3, "list override");
    check(gr_config_override(cfg, "train.epochs=abc") == GR_ERR_INVALID &&
              msg_has("train.epochs", "expected an integer"), "override of the wrong type");
    check(gr_config_override(cfg, "train.nope=1") == GR_ERR_INVALID && msg_has("unknown key", "train.nope"),
          "override of an unknown key");
    check(gr_config_override(cfg, "novalue") == GR_ERR_INVALID && msg_has("KEY=VALUE", NULL),
          "override without '='");
    char buf[256];
    check(strcmp(gr_config_origin(cfg, "train.lr", buf, sizeof buf), "command line (-s train.lr)") == 0,
          "origin of an override");
    char expect[512];
    snprintf(expect, sizeof expect, "%s:1", path);
    check(strcmp(gr_config_origin(cfg, "train.epochs", buf, sizeof buf), expect) == 0, "origin file:line");
    char out[128];
    snprintf(out, sizeof out, "%s.resolved", path);
    check(gr_config_write(cfg, out) == GR_OK, "resolved config written");
    gr_config *back;
    check(gr_config_load(out, &back) == GR_OK && gr_config_validate(back) == GR_OK &&
              gr_config_float(back, "train.lr") == 1e-3 && gr_config_int(back, "train.epochs") == 3 &&
              gr_config_is_set(back, "train.amp"), "resolved config reads back with defaults filled");
    gr_config_free(back);
    gr_config_free(cfg);
    unlink(out);

    check(load_validate("train = {\n  epochs = 3;\n  epoks = 4;\n};\n", &cfg, &path) == GR_ERR_INVALID &&
              msg_has(":3: unknown key 'train.epoks'", "did you mean 'train.epochs'"),
          "unknown key names file:line and suggests");
    check(load_validate("train = { lr = \"fast\"; };\n", &cfg, &path) == GR_ERR_INVALID &&
              msg_has(":1: train.lr", "expected a number"), "wrong type names file:line and key");
    check(load_validate("optim = { lr = 1.0; };\n", &cfg, &path) == GR_ERR_INVALID &&
              msg_has("unknown group 'optim'", NULL), "unknown group");
    check(load_validate("train = { lr = 1.0 \n", &cfg, &path) == GR_ERR_FORMAT && msg_has(path, ":2:"),
          "syntax error names file and line");
    check(gr_config_load("/nonexistent/x.cfg", &cfg) == GR_ERR_IO && msg_has("/nonexistent/x.cfg", NULL),
          "missing file named");
    check(gr_config_load(NULL, &cfg) == GR_OK && gr_config_int(cfg, "train.epochs") == 10 &&
              !gr_config_is_set(cfg, "model.dir") && strcmp(gr_config_string(cfg, "model.dir"), "") == 0,
          "no file: defaults");
    gr_config_free(cfg);
    for (int i = 0; i < 16; i++) {
        char p[64];
        snprintf(p, sizeof p, "/tmp/graft_test_config_%d_%d.cfg", (int)getpid(), i);
        unlink(p);
    }
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}

/* `graft verify`: run a model directory's case file and compare every reference tensor.
 *
 * The harness (verify.c) opens MODEL_DIR/config.json, model.safetensors and the case file,
 * picks the handler for the case's `family` metadata, lets it compute, then compares: each
 * reference tensor (every case tensor not listed in the `inputs` metadata) gets one line
 * `NAME REL_ERR ok|FAIL`; a reference the handler did not report is a FAIL. Tolerances:
 * rel. error < 1e-4 for outputs, < 1e-3 for `grad.*` / `*.grad.*`, integers exact.
 *
 * A handler is generic over a plugin kind: the LM handler serves every language-model plugin
 * (the case family names the plugin), the vision handler every vision tower, the BLIP-2
 * handler the composite. */
#ifndef GRAFT_CORE_VERIFY_H
#define GRAFT_CORE_VERIFY_H

#include <jansson.h>

#include "graft/ops.h"
#include "graft/weights.h"

typedef struct gr_verify_run gr_verify_run;

struct gr_verify_run {
    gr_ctx *ctx;
    const char *model_dir;
    const char *config_path;
    json_t *config;             /* MODEL_DIR/config.json */
    gr_weights *model;          /* MODEL_DIR weights */
    gr_weights *cases;          /* the case file */
    const char *family;         /* case metadata "family" */
    struct gr_verify_results *results; /* harness-private */
};

/* A case input (must exist; NULL with the run failed and a message naming it otherwise). */
const gr_weight_info *gr_verify_input(gr_verify_run *run, const char *name);
/* Uploads a case input as a transient tensor: float inputs as F32, integer inputs as I32. */
gr_tensor *gr_verify_input_tensor(gr_verify_run *run, const char *name);
/* Case input as a malloc'd host int32 array (ids, masks, labels); *count gets numel. */
int32_t *gr_verify_input_i32(gr_verify_run *run, const char *name, int64_t *count);
/* True when the case holds a reference called `name` (so the handler need not compute
 * everything it could). */
int gr_verify_wants(gr_verify_run *run, const char *name);
/* Hands the harness a computed tensor for reference `name` (downloaded at once, so the tensor
 * may be freed afterwards). Names without a reference are ignored. */
gr_status gr_verify_report(gr_verify_run *run, const char *name, gr_tensor *t);
gr_status gr_verify_report_i64(gr_verify_run *run, const char *name, const int64_t *v,
                               int64_t n);

typedef gr_status (*gr_verify_handler)(gr_verify_run *run);

/* Handlers by case family (verify_lm.c, verify_vision.c, verify_blip2.c). */
gr_status gr_verify_language_model(gr_verify_run *run);  /* "opt", "t5", "llama" */
gr_status gr_verify_vision_tower(gr_verify_run *run);    /* "clip_vision" */
gr_status gr_verify_blip2(gr_verify_run *run);           /* "blip2" */

/* Runs the whole check; prints the per-tensor lines and the last line
 * `verify: N passed, M failed`. Returns 0 only when M is 0 and nothing failed to run. */
int gr_verify_main(const char *model_dir, const char *case_path, const char *backend_name);

#endif

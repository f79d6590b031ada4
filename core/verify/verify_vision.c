/* `graft verify` for image towers (case family "clip_vision"): a vector-Jacobian product test.
 *
 * The case gives pixel_values and cotangents of last_hidden_state and pooler_output; the
 * references are the outputs, hidden_states.*, objective = sum(last_hidden_state * cot_1) +
 * sum(pooler_output * cot_2), and the objective's gradients grad.pixel_values and
 * grad.<weight>. The tower plugin follows the config's model_type (clip-vit, blip2-vit). */
#include <stdio.h>
#include <string.h>

#include "graft/model.h"
#include "plugin/registry.h"
#include "verify/verify.h"

/* Marks every weight with a grad.<name> reference trainable. */
static void want_weight_grads(gr_verify_run *run, const gr_param_list *pl)
{
    for (int i = 0; i < gr_weights_count(run->cases); i++) {
        const char *n = gr_weights_at(run->cases, i)->name;
        if (strncmp(n, "grad.", 5) != 0) continue;
        for (int j = 0; j < pl->count; j++)
            if (pl->items[j]->name && strcmp(pl->items[j]->name, n + 5) == 0)
                gr_set_trainable(pl->items[j], 1);
    }
}

static gr_status report_weight_grads(gr_verify_run *run, const gr_param_list *pl)
{
    char name[512];
    for (int j = 0; j < pl->count; j++) {
        gr_tensor *g = gr_is_trainable(pl->items[j]) ? gr_grad(pl->items[j]) : NULL;
        if (!g) continue;
        snprintf(name, sizeof name, "grad.%s", pl->items[j]->name);
        gr_status st = gr_verify_report(run, name, g);
        if (st) return st;
    }
    return GR_OK;
}

gr_status gr_verify_vision_tower(gr_verify_run *run)
{
    gr_ctx *ctx = run->ctx;
    const json_t *mt = json_object_get(run->config, "model_type");
    const char *type = json_is_string(mt) ? json_string_value(mt) : "";
    const char *plugin = strcmp(type, "clip_vision_model") == 0 || strcmp(type, "clip") == 0
                             ? "clip-vit"
                         : strcmp(type, "blip_2_vision_model") == 0 ? "blip2-vit" : NULL;
    if (!plugin)
        return gr_fail(GR_ERR_UNSUPPORTED, "%s: model_type: '%s' is not an image tower "
                       "(clip_vision_model, blip_2_vision_model)", run->config_path, type);
    const void *iface_ptr;
    gr_status st = gr_plugin_iface(GR_PLUGIN_VISION_ENCODER, plugin, &iface_ptr);
    if (st) return st;
    const gr_vision_iface *vi = iface_ptr;
    gr_model_source src = {.struct_size = sizeof src, .dir = run->model_dir, .config = run->config,
                           .config_path = run->config_path, .weights = run->model, .prefix = ""};
    gr_vision *v;
    if ((st = vi->open(ctx, &src, &v))) return st;
    gr_param_list pl;
    vi->params(v, &pl);
    want_weight_grads(run, &pl);

    gr_tensor *pixels = gr_verify_input_tensor(run, "pixel_values");
    if (!pixels) { vi->close(v, ctx); return gr_ctx_status(ctx) ? gr_ctx_status(ctx) : GR_ERR_NOT_FOUND; }
    gr_requires_grad(pixels);
    gr_vision_outputs out = {.struct_size = sizeof out};
    if ((st = vi->forward(v, ctx, pixels, 1, &out))) { vi->close(v, ctx); return st; }
    char name[64];
    st = gr_verify_report(run, "last_hidden_state", out.last_hidden_state);
    if (!st) st = gr_verify_report(run, "pooler_output", out.pooler_output);
    for (int i = 0; !st && i < out.num_hidden_states; i++) {
        snprintf(name, sizeof name, "hidden_states.%d", i);
        st = gr_verify_report(run, name, out.hidden_states[i]);
    }
    if (!st && gr_verify_wants(run, "objective")) {
        gr_tensor *c1 = gr_verify_input_tensor(run, "cotangent.last_hidden_state");
        gr_tensor *c2 = gr_verify_input_tensor(run, "cotangent.pooler_output");
        gr_tensor *obj = gr_add(ctx, gr_sum(ctx, gr_mul(ctx, out.last_hidden_state, c1)),
                                gr_sum(ctx, gr_mul(ctx, out.pooler_output, c2)));
        st = gr_ctx_status(ctx);
        if (!st) st = gr_verify_report(run, "objective", obj);
        if (!st) st = gr_backward(ctx, obj, NULL);
        if (!st && gr_grad(pixels)) st = gr_verify_report(run, "grad.pixel_values", gr_grad(pixels));
        if (!st) st = report_weight_grads(run, &pl);
    }
    vi->close(v, ctx);
    return st;
}

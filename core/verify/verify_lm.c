/* `graft verify` handler for language models, generic over every LM plugin: the case family
 * names the plugin ("opt", "t5", "llama"). Two passes, as the fixtures define them:
 *   1. input_ids / attention_mask / labels -> logits, loss, hidden states (decoder-only:
 *      hidden_states.i; T5: decoder_hidden_states.i, encoder_hidden_states.i,
 *      encoder_last_hidden_state, decoder_input_ids) and grad.<weight> of the loss;
 *   2. embeds.inputs_embeds / embeds.attention_mask / embeds.labels -> embeds.logits,
 *      embeds.loss, embeds.last_hidden_state or embeds.encoder_last_hidden_state, and
 *      embeds.grad.inputs_embeds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graft/model.h"
#include "plugin/registry.h"
#include "verify/verify.h"

static int wants_any_grad(gr_verify_run *run, gr_param_list *pl)
{
    char name[600];
    for (int i = 0; i < pl->count; i++) {
        snprintf(name, sizeof name, "grad.%s", pl->items[i]->name);
        if (gr_verify_wants(run, name)) return 1;
    }
    return 0;
}

static gr_status report_hidden(gr_verify_run *run, const char *fmt, gr_tensor **hs, int n)
{
    char name[128];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, fmt, i);
        gr_status s = gr_verify_report(run, name, hs[i]);
        if (s) return s;
    }
    return GR_OK;
}

/* Fills in (batch, seq, ids/mask/labels) from case inputs "<pfx>input_ids" etc. */
static gr_status read_text(gr_verify_run *run, const char *pfx, int encdec, gr_lm_inputs *in, int32_t **ids,
                           int32_t **mask, int32_t **labels)
{
    char name[128];
    const gr_weight_info *w;
    *ids = *mask = *labels = NULL;
    snprintf(name, sizeof name, "%sattention_mask", pfx);
    w = gr_verify_input(run, name);
    if (!w) return gr_ctx_status(run->ctx);
    if (w->ndim != 2) return gr_ctx_fail(run->ctx, GR_ERR_SHAPE, "%s: case input '%s' must be 2-D", run->model_dir, name);
    in->batch = w->shape[0];
    in->seq = w->shape[1];
    *mask = gr_verify_input_i32(run, name, NULL);
    snprintf(name, sizeof name, "%slabels", pfx);
    w = gr_verify_input(run, name);
    if (!w) return gr_ctx_status(run->ctx);
    if (w->ndim != 2 || w->shape[0] != in->batch || (!encdec && w->shape[1] != in->seq))
        return gr_ctx_fail(run->ctx, GR_ERR_SHAPE, "%s: case input '%s' has the wrong shape", run->model_dir, name);
    in->label_len = w->shape[1];
    *labels = gr_verify_input_i32(run, name, NULL);
    in->mask = *mask;
    in->labels = *labels;
    if (pfx[0] == '\0') {
        w = gr_verify_input(run, "input_ids");
        if (!w) return gr_ctx_status(run->ctx);
        if (w->ndim != 2 || w->shape[0] != in->batch || w->shape[1] != in->seq)
            return gr_ctx_fail(run->ctx, GR_ERR_SHAPE, "%s: case input 'input_ids' has the wrong shape", run->model_dir);
        *ids = gr_verify_input_i32(run, "input_ids", NULL);
        in->ids = *ids;
    }
    return gr_ctx_status(run->ctx);
}

static gr_status pass_tokens(gr_verify_run *run, const gr_lm_iface *lm, gr_lm *m, const gr_lm_info *info,
                             gr_param_list *pl)
{
    gr_lm_inputs in;
    memset(&in, 0, sizeof in);
    in.struct_size = sizeof in;
    in.want_hidden_states = 1;
    int32_t *ids, *mask, *labels;
    gr_status s = read_text(run, "", info->is_encoder_decoder, &in, &ids, &mask, &labels);
    if (s == GR_OK && info->is_encoder_decoder && gr_verify_wants(run, "decoder_input_ids")) {
        /* _shift_right(labels): decoder_start first, -100 -> pad. */
        int64_t n = in.batch * in.label_len;
        int64_t *d = malloc((size_t)(n + 1) * sizeof *d);
        if (!d) s = gr_ctx_fail(run->ctx, GR_ERR_NOMEM, "out of memory");
        for (int64_t b = 0; s == GR_OK && b < in.batch; b++)
            for (int64_t t = 0; t < in.label_len; t++) {
                int32_t v = t == 0 ? info->decoder_start_id : labels[b * in.label_len + t - 1];
                d[b * in.label_len + t] = v == -100 ? info->pad_id : v;
            }
        if (s == GR_OK) s = gr_verify_report_i64(run, "decoder_input_ids", d, n);
        free(d);
    }
    gr_lm_outputs out = {.struct_size = sizeof out};
    memset(&out, 0, sizeof out);
    if (s == GR_OK) s = lm->forward(m, run->ctx, &in, &out);
    if (s == GR_OK) {
        gr_verify_report(run, "logits", out.logits);
        gr_verify_report(run, "loss", out.loss);
        gr_verify_report(run, "last_hidden_state", out.last_hidden_state);
        if (info->is_encoder_decoder) {
            gr_verify_report(run, "encoder_last_hidden_state", out.encoder_last_hidden_state);
            report_hidden(run, "decoder_hidden_states.%d", out.hidden_states, out.num_hidden_states);
            report_hidden(run, "encoder_hidden_states.%d", out.encoder_hidden_states, out.num_encoder_hidden_states);
        } else {
            report_hidden(run, "hidden_states.%d", out.hidden_states, out.num_hidden_states);
        }
        s = gr_ctx_status(run->ctx);
    }
    if (s == GR_OK && out.loss && wants_any_grad(run, pl)) {
        s = gr_backward(run->ctx, out.loss, NULL);
        char name[600];
        for (int i = 0; s == GR_OK && i < pl->count; i++) {
            snprintf(name, sizeof name, "grad.%s", pl->items[i]->name);
            if (gr_verify_wants(run, name)) s = gr_verify_report(run, name, gr_grad(pl->items[i]));
        }
    }
    free(ids);
    free(mask);
    free(labels);
    return s;
}

static gr_status pass_embeds(gr_verify_run *run, const gr_lm_iface *lm, gr_lm *m, const gr_lm_info *info)
{
    gr_lm_inputs in;
    memset(&in, 0, sizeof in);
    in.struct_size = sizeof in;
    int32_t *ids, *mask, *labels;
    gr_status s = read_text(run, "embeds.", info->is_encoder_decoder, &in, &ids, &mask, &labels);
    gr_tensor *x = s == GR_OK ? gr_verify_input_tensor(run, "embeds.inputs_embeds") : NULL;
    if (x) gr_requires_grad(x);
    in.inputs_embeds = x;
    gr_lm_outputs out = {.struct_size = sizeof out};
    memset(&out, 0, sizeof out);
    s = gr_ctx_status(run->ctx);
    if (s == GR_OK) s = lm->forward(m, run->ctx, &in, &out);
    if (s == GR_OK) {
        gr_verify_report(run, "embeds.logits", out.logits);
        gr_verify_report(run, "embeds.loss", out.loss);
        gr_verify_report(run, "embeds.last_hidden_state", out.last_hidden_state);
        gr_verify_report(run, "embeds.encoder_last_hidden_state", out.encoder_last_hidden_state);
        s = gr_ctx_status(run->ctx);
    }
    if (s == GR_OK && out.loss && gr_verify_wants(run, "embeds.grad.inputs_embeds")) {
        s = gr_backward(run->ctx, out.loss, NULL);
        if (s == GR_OK) s = gr_verify_report(run, "embeds.grad.inputs_embeds", gr_grad(x));
    }
    free(mask);
    free(labels);
    return s;
}

gr_status gr_verify_language_model(gr_verify_run *run)
{
    const void *iface;
    gr_status s = gr_plugin_iface(GR_PLUGIN_LANGUAGE_MODEL, run->family, &iface);
    if (s) return s;
    const gr_lm_iface *lm = iface;
    gr_model_source src;
    memset(&src, 0, sizeof src);
    src.struct_size = sizeof src;
    src.dir = run->model_dir;
    src.config = run->config;
    src.config_path = run->config_path;
    src.weights = run->model;
    src.prefix = "";
    gr_lm *m = NULL;
    if ((s = lm->open(run->ctx, &src, &m)) != GR_OK) return s;
    gr_lm_info info = {.struct_size = sizeof info};
    lm->info(m, &info);
    gr_param_list pl;
    lm->params(m, &pl);
    char name[600];
    for (int i = 0; i < pl.count; i++) {
        snprintf(name, sizeof name, "grad.%s", pl.items[i]->name);
        if (gr_verify_wants(run, name)) gr_set_trainable(pl.items[i], 1);
    }
    s = pass_tokens(run, lm, m, &info, &pl);
    gr_ctx_reset(run->ctx);
    for (int i = 0; i < pl.count; i++) gr_set_trainable(pl.items[i], 0);
    if (s == GR_OK && gr_weights_find(run->cases, "embeds.inputs_embeds")) s = pass_embeds(run, lm, m, &info);
    if (s != GR_OK) gr_fail(s, "%s", gr_last_error()); /* keep the message through close */
    char keep[1024];
    snprintf(keep, sizeof keep, "%s", gr_last_error());
    gr_ctx_reset(run->ctx);
    lm->close(m, run->ctx);
    if (s != GR_OK) gr_fail(s, "%s", keep);
    return s;
}

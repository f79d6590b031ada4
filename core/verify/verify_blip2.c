/* `graft verify` for BLIP-2 composites (case family "blip2"): vision -> Q-Former ->
 * language_projection -> OPT / T5, opened from the model directory as one gr_vlm.
 *
 * Pass 1 runs the whole captioning loss with pixel_values and the referenced weights needing
 * gradients, and +0 taps on image_embeds and the soft prompt: it gives every stage output,
 * logits, loss, grad.pixel_values, grad.image_embeds and grad.<weight>. Pass 2 runs the LM
 * alone on lm.inputs_embeds = concat(language_model_inputs, token embeddings) as a leaf, for
 * grad.lm.inputs_embeds (its first rows are the soft prompt's gradient, the rest the token
 * embeddings'). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verify/verify.h"
#include "vlm/vlm.h"

typedef struct blip2_case {
    int32_t *ids, *mask, *labels;
    int64_t batch, seq, label_len;
} blip2_case;

static gr_status report_lm_mask(gr_verify_run *run, const blip2_case *c, int64_t q, int32_t **mask_out)
{
    int64_t t = q + c->seq;
    int64_t *m64 = malloc((size_t)(c->batch * t) * sizeof *m64);
    int32_t *m32 = malloc((size_t)(c->batch * t) * sizeof *m32);
    if (!m64 || !m32) { free(m64); free(m32); return gr_fail(GR_ERR_NOMEM, "out of memory"); }
    for (int64_t b = 0; b < c->batch; b++)
        for (int64_t i = 0; i < t; i++)
            m64[b * t + i] = m32[b * t + i] = i < q ? 1 : (c->mask ? c->mask[b * c->seq + i - q] : 1);
    gr_status st = gr_verify_report_i64(run, "lm.attention_mask", m64, c->batch * t);
    free(m64);
    *mask_out = m32;
    return st;
}

/* T5's _shift_right: decoder_start_token_id first, labels shifted, -100 -> pad. */
static gr_status report_decoder_inputs(gr_verify_run *run, const blip2_case *c, const gr_lm_info *li)
{
    int64_t n = c->batch * c->label_len;
    int64_t *d = malloc((size_t)(n ? n : 1) * sizeof *d);
    if (!d) return gr_fail(GR_ERR_NOMEM, "out of memory");
    for (int64_t b = 0; b < c->batch; b++)
        for (int64_t i = 0; i < c->label_len; i++) {
            int64_t v = i == 0 ? li->decoder_start_id : c->labels[b * c->label_len + i - 1];
            d[b * c->label_len + i] = v == -100 ? li->pad_id : v;
        }
    gr_status st = gr_verify_report_i64(run, "decoder_input_ids", d, n);
    free(d);
    return st;
}

/* Pass 2: the LM alone from inputs_embeds (a leaf), for grad.lm.inputs_embeds. */
static gr_status lm_embeds_pass(gr_verify_run *run, gr_vlm *m, const blip2_case *c,
                                const gr_vlm_info *info, gr_tensor *embeds, const int32_t *lm_mask)
{
    gr_ctx *ctx = run->ctx;
    int64_t q = info->prompt_len, t = q + c->seq;
    int32_t *labels = (int32_t *)c->labels;
    gr_lm_inputs li = {.struct_size = sizeof li, .batch = c->batch, .seq = t, .inputs_embeds = embeds,
                       .mask = lm_mask, .label_len = c->label_len};
    if (!info->lm.is_encoder_decoder) { /* labels aligned with [prompt | text]: prompt ignored */
        labels = malloc((size_t)(c->batch * t) * sizeof *labels);
        if (!labels) return gr_fail(GR_ERR_NOMEM, "out of memory");
        for (int64_t b = 0; b < c->batch; b++)
            for (int64_t i = 0; i < t; i++)
                labels[b * t + i] = i < q ? -100 : c->labels[b * c->seq + i - q];
        li.label_len = t;
    }
    li.labels = labels;
    gr_requires_grad(embeds);
    gr_lm_outputs out = {.struct_size = sizeof out};
    gr_status st = gr_vlm_lm_iface(m)->forward(gr_vlm_lm(m), ctx, &li, &out);
    if (!st && !out.loss) st = gr_fail(GR_ERR_INVALID, "blip2: the language model returned no loss");
    if (!st) st = gr_backward(ctx, out.loss, NULL);
    if (!st && gr_grad(embeds)) st = gr_verify_report(run, "grad.lm.inputs_embeds", gr_grad(embeds));
    if (labels != c->labels) free(labels);
    return st;
}

static gr_status run_blip2(gr_verify_run *run, gr_vlm *m, blip2_case *c)
{
    gr_ctx *ctx = run->ctx;
    gr_vlm_info info = {.struct_size = sizeof(gr_vlm_info)};
    gr_vlm_get_info(m, &info);
    gr_status st;

    /* Weights with a grad.<name> reference need their gradient. */
    int ntrain = 0;
    gr_tensor **trained = calloc((size_t)gr_weights_count(run->cases) + 1, sizeof *trained);
    if (!trained) return gr_fail(GR_ERR_NOMEM, "out of memory");
    for (int i = 0; i < gr_weights_count(run->cases); i++) {
        const char *n = gr_weights_at(run->cases, i)->name;
        gr_tensor *p = strncmp(n, "grad.", 5) == 0 ? gr_vlm_param_find(m, n + 5) : NULL;
        if (p && !gr_is_trainable(p)) { gr_set_trainable(p, 1); trained[ntrain++] = p; }
    }

    gr_tensor *pixels = gr_verify_input_tensor(run, "pixel_values");
    if (!pixels) { free(trained); return gr_ctx_status(ctx) ? gr_ctx_status(ctx) : GR_ERR_NOT_FOUND; }
    gr_requires_grad(pixels);
    gr_vlm_inputs in = {.struct_size = sizeof in, .pixel_values = pixels, .seq = c->seq,
                        .ids = c->ids, .mask = c->mask, .labels = c->labels,
                        .label_len = c->label_len, .tap_stage_grads = 1};
    gr_vlm_outputs out = {.struct_size = sizeof(gr_vlm_outputs)};
    int32_t *lm_mask = NULL;
    gr_tensor *embeds = NULL;
    if ((st = gr_vlm_forward(m, ctx, &in, &out))) goto done;
    const struct { const char *name; gr_tensor *t; } outs[] = {
        {"image_embeds", out.image_embeds},
        {"vision.pooler_output", out.vision_pooler},
        {"query_output", out.query_output},
        {"language_model_inputs", out.soft_prompt},
        {"logits", out.lm.logits},
        {"loss", out.lm.loss},
        {"lm.last_hidden_state", out.lm.last_hidden_state},
        {"lm.encoder_last_hidden_state", out.lm.encoder_last_hidden_state},
    };
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++)
        if (outs[i].t && (st = gr_verify_report(run, outs[i].name, outs[i].t))) goto done;
    if ((st = report_lm_mask(run, c, info.prompt_len, &lm_mask))) goto done;
    if (info.lm.is_encoder_decoder && (st = report_decoder_inputs(run, c, &info.lm))) goto done;

    /* lm.inputs_embeds = concat(soft prompt, token embeddings), as HF builds it (a constant
     * copy: pass 2 differentiates with respect to it). */
    gr_tensor *ids = gr_from_host(ctx, GR_I32, 2, (int64_t[]){c->batch, c->seq}, c->ids);
    gr_tensor *tok = gr_embedding(ctx, gr_vlm_lm_iface(m)->input_embeddings(gr_vlm_lm(m)), ids, -1);
    embeds = gr_detach(ctx, gr_concat(ctx, out.soft_prompt, tok, 1));
    if ((st = gr_ctx_status(ctx))) goto done;
    gr_keep(embeds);
    if ((st = gr_verify_report(run, "lm.inputs_embeds", embeds))) goto done;

    if (!out.lm.loss) { st = gr_fail(GR_ERR_INVALID, "blip2: the language model returned no loss"); goto done; }
    if ((st = gr_backward(ctx, out.lm.loss, NULL))) goto done;
    if (gr_grad(pixels) && (st = gr_verify_report(run, "grad.pixel_values", gr_grad(pixels)))) goto done;
    if (gr_grad(out.image_embeds_tap) &&
        (st = gr_verify_report(run, "grad.image_embeds", gr_grad(out.image_embeds_tap))))
        goto done;
    char name[512];
    for (int i = 0; i < gr_vlm_param_count(m); i++) {
        const char *pn;
        gr_tensor *p = gr_vlm_param_at(m, i, &pn);
        if (!gr_is_trainable(p) || !gr_grad(p)) continue;
        snprintf(name, sizeof name, "grad.%s", pn);
        if ((st = gr_verify_report(run, name, gr_grad(p)))) goto done;
    }
    for (int i = 0; i < ntrain; i++) gr_set_trainable(trained[i], 0);
    ntrain = 0;
    if (gr_verify_wants(run, "grad.lm.inputs_embeds"))
        st = lm_embeds_pass(run, m, c, &info, embeds, lm_mask);
done:
    for (int i = 0; i < ntrain; i++) gr_set_trainable(trained[i], 0);
    free(trained);
    free(lm_mask);
    return st;
}

gr_status gr_verify_blip2(gr_verify_run *run)
{
    gr_vlm *m;
    gr_status st = gr_vlm_open_blip2(run->ctx, run->model_dir, run->config, run->config_path,
                                     run->model, &m);
    if (st) return st;
    blip2_case c = {0};
    int64_t n_ids = 0, n_mask = 0, n_labels = 0;
    const gr_weight_info *pix = gr_verify_input(run, "pixel_values");
    c.ids = gr_verify_input_i32(run, "input_ids", &n_ids);
    c.mask = gr_verify_input_i32(run, "attention_mask", &n_mask);
    c.labels = gr_verify_input_i32(run, "labels", &n_labels);
    if (!pix || !c.ids || !c.mask || !c.labels) {
        st = gr_ctx_status(run->ctx) ? gr_ctx_status(run->ctx) : GR_ERR_NOT_FOUND;
    } else {
        c.batch = pix->shape[0];
        const gr_weight_info *ii = gr_verify_input(run, "input_ids");
        const gr_weight_info *li = gr_verify_input(run, "labels");
        if (ii->ndim != 2 || ii->shape[0] != c.batch || n_mask != n_ids || li->ndim != 2 ||
            li->shape[0] != c.batch) {
            st = gr_fail(GR_ERR_SHAPE, "%s: input_ids, attention_mask and labels must be [batch, "
                         "len] with the batch of pixel_values", run->model_dir);
        } else {
            c.seq = ii->shape[1];
            c.label_len = li->shape[1];
            st = run_blip2(run, m, &c);
        }
    }
    free(c.ids);
    free(c.mask);
    free(c.labels);
    gr_vlm_close(m, run->ctx);
    return st;
}

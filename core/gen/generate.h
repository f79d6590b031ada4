/* Text generation from a language-model plugin: greedy and beam search with Hugging Face's
 * semantics (min/max new tokens, length penalty on the generated length, EOS handling), a soft
 * prompt prefix, left padding in batches and the plugin's KV cache. */
#ifndef GRAFT_CORE_GENERATE_H
#define GRAFT_CORE_GENERATE_H

#include "graft/model.h"

#define GR_GEN_MAX_EOS 4

typedef struct gr_gen_config {
    int num_beams;            /* 1: greedy */
    int max_new_tokens;
    int min_new_tokens;       /* EOS is forbidden before this many tokens */
    double length_penalty;    /* beam score = sum_logprobs / generated_len^length_penalty */
    int32_t eos_ids[GR_GEN_MAX_EOS]; /* any of them ends a sequence (OPT captions: "\n", </s>) */
    int n_eos;
    int32_t pad_id;           /* filler after a row has finished (greedy) */
} gr_gen_config;

/* Generates for every row of `prompt` (batch rows; ids/mask/prefix as in gr_lm_inputs, left
 * padded; an encoder-decoder's prompt is handed to the plugin right padded, as HF's T5 tokenizer
 * pads, so any padding works there). out_ids gets a malloc'd [batch * max_new_tokens] array,
 * out_lens[batch] the number of tokens of each row (EOS excluded). Uses iface->info and the
 * generate_begin/step, cache_reorder and cache_free slots. */
gr_status gr_generate(const gr_lm_iface *iface, gr_lm *lm, gr_ctx *ctx,
                      const gr_lm_inputs *prompt, const gr_gen_config *cfg, int32_t **out_ids,
                      int *out_lens);

#endif

/* Surrogate language models for zero-shot vision-encoder grafting (Yue et al., 2025; see
 * docs/surrogate.md).
 *
 * A surrogate of a target LM with L decoder layers and translator ranges [a, b) keeps layers
 * 0..a-1, keeps layer a as the *translator* (same weights; the strategy trains it later), drops
 * a+1..b-1 and keeps b..L-1, inheriting the embeddings, the final norm and the head. Several
 * disjoint ranges may be given. gr_surrogate_build writes it as a normal Hugging Face directory
 * of the target's family (kept layers renumbered 0..n-1, num_hidden_layers updated) plus
 * surrogate.json recording which original layer each surrogate layer is, so a strategy knows
 * which layer to train and which original weights to load back.
 *
 * The range is read off the target's *prediction trajectory* (gr_surrogate_analyze): the logit
 * lens (final norm + head applied to every layer's hidden state) gives, per layer, the
 * probability of the ground-truth next token at each position; renormalised over positions it
 * is a distribution q_l, and KL(q_L || q_l) against the last layer, averaged over a corpus, is
 * the curve the paper reads its early and late phases from. */
#ifndef GRAFT_CORE_TRANSFER_SURROGATE_H
#define GRAFT_CORE_TRANSFER_SURROGATE_H

#include <jansson.h>
#include <stdint.h>

#include "graft/model.h"
#include "graft/status.h"

/* ------------------------------------------------------------------ layout ---- */

typedef struct gr_surrogate_range {
    int a, b; /* translator layer a; layers a+1..b-1 are dropped; layer b is kept */
} gr_surrogate_range;

/* Which target layers a surrogate runs, in order. */
typedef struct gr_surrogate_layout {
    int num_layers;       /* L of the target */
    int num_kept;         /* layers of the surrogate */
    int *kept;            /* [num_kept] original index of each surrogate layer (ascending) */
    int num_translators;
    int *translators;     /* [num_translators] surrogate position of each range's layer a */
} gr_surrogate_layout;

/* Parses "a:b" (decimal, a < b checked later against L). `what` names the flag in messages. */
gr_status gr_surrogate_parse_range(const char *text, const char *what, gr_surrogate_range *out);
/* Checks the ranges against L (0 <= a < b <= L, pairwise disjoint as half-open intervals
 * [a, b)) and computes the layout. No ranges: every layer is kept. */
gr_status gr_surrogate_layout_make(int num_layers, const gr_surrogate_range *ranges, int count,
                                   gr_surrogate_layout *out);
void gr_surrogate_layout_free(gr_surrogate_layout *layout);

/* Writes the surrogate of TARGET_DIR (config.json, model.safetensors or a sharded index) to
 * OUT_DIR: model.safetensors with every kept tensor's bytes copied unchanged in its stored
 * dtype and layer tensors renamed to their new index, config.json with num_hidden_layers (and
 * per-layer lists such as layer_types) updated, the tokenizer and generation files copied, and
 * surrogate.json. Supported families: those whose decoder layers are named "...layers.N."
 * (llama, opt). *layout (may be NULL) receives the layout. */
gr_status gr_surrogate_build(const char *target_dir, const gr_surrogate_range *ranges, int count,
                             const char *out_dir, gr_surrogate_layout *layout);

/* Reads DIR/surrogate.json: the layout and (when out_target is not NULL) the target directory
 * it was built from (malloc'd). */
gr_status gr_surrogate_read_layout(const char *dir, gr_surrogate_layout *layout, char **out_target);

/* ------------------------------------------------------------- logit lens ---- */

/* The target's output head as a function of any decoder hidden state: final norm (+ OPT's
 * project_out) + LM head, exactly as the plugin applies them after its last layer. Holds
 * references to the model's parameters (valid while the model is open). */
typedef struct gr_lens gr_lens;

/* family: the plugin name ("opt", "llama"); config: the model's config object. T5 and other
 * families: GR_ERR_UNSUPPORTED with a message saying so. */
gr_status gr_lens_open(const char *family, const gr_lm_iface *iface, gr_lm *lm, const json_t *config,
                       const char *config_path, gr_lens **out);
/* logits [..., vocab] of hidden state h [..., hidden] (of layer < L: the last entry of
 * hidden_states is already normed, its lens is the forward's logits). */
gr_tensor *gr_lens_apply(gr_ctx *ctx, const gr_lens *lens, gr_tensor *h);
void gr_lens_free(gr_lens *lens);

/* ------------------------------------------------------------- trajectory ---- */

typedef struct gr_trajectory {
    int num_layers;       /* L: the arrays have L + 1 entries, entry l for hidden_states[l]
                             (0 = embeddings, L = the model's output) */
    double *kl;           /* mean over texts of KL(q_L || q_l) in nats */
    double *mean_logp;    /* mean over predicted tokens of log p_l(ground truth) */
    int64_t texts;        /* texts used */
    int64_t tokens;       /* predicted positions used */
    int64_t skipped;      /* texts with fewer than 2 predicted positions (KL undefined) */
} gr_trajectory;

void gr_trajectory_free(gr_trajectory *t);

/* KL(q_ref || q) in nats, where q_ref, q are softmax(logp_ref), softmax(logp) over the n
 * positions (the renormalised probabilities of the ground-truth tokens). */
double gr_trajectory_kl(const double *logp_ref, const double *logp, int64_t n);

/* Accumulates the trajectory over texts of token ids (BOS included as the tokenizer adds it),
 * batch texts at a time (right-padded), gradients off. */
typedef struct gr_trajectory_input {
    const int32_t *const *ids;
    const int64_t *lens;
    int64_t count;
    int batch;
} gr_trajectory_input;
gr_status gr_trajectory_compute(gr_ctx *ctx, const gr_lm_iface *iface, gr_lm *lm, const gr_lens *lens,
                                const gr_trajectory_input *in, gr_trajectory *out);

/* The proposal rule (docs/surrogate.md): let D = kl[0] - kl[L] be the total decline and
 * drop(l) = kl[l] - kl[l+1] the step of layer l. The transition is the layer l* with the
 * largest drop; it is *abrupt* when drop(l*) >= GR_TRANSITION_MIN_SHARE * D and
 * drop(l*) >= GR_TRANSITION_MIN_RATIO * D / L (several times a uniform decline). Then the
 * early phase is layers 0..l*, the translator is a = l* + 1 and the range ends at b = L - 1 so
 * the last layer is kept; when a >= b nothing can be dropped and no range is proposed. */
#define GR_TRANSITION_MIN_SHARE 0.25
#define GR_TRANSITION_MIN_RATIO 2.5
typedef struct gr_transition {
    int abrupt;           /* 1: an abrupt transition was found */
    int layer;            /* l*: the layer with the largest drop (-1 when the curve is flat) */
    double drop, share, ratio; /* drop(l*), drop / D, drop / (D / L) */
    int has_range;        /* a range is proposed */
    gr_surrogate_range range;
    char reason[256];     /* one line: why (no) range */
} gr_transition;
void gr_trajectory_transition(const gr_trajectory *t, gr_transition *out);

/* `graft surrogate analyze` as a library call: opens TARGET_DIR's LM with its plugin on the
 * backend, tokenizes the corpus (one text per line, blank lines skipped) with the tokenizer of
 * tokenizer_dir (NULL: target_dir) until max_tokens tokens (0: all), and computes the
 * trajectory. */
typedef struct gr_surrogate_analyze_opts {
    const char *target_dir;
    const char *corpus;
    const char *tokenizer_dir;
    int64_t max_tokens;
    int64_t max_seq;      /* texts are cut to this many tokens (0: 256, and never beyond the
                             model's positions) */
    int batch;            /* 0: 8 */
    const char *backend;  /* NULL: "cpu" */
    const void *backend_options; /* gr_backend_options or NULL */
} gr_surrogate_analyze_opts;
gr_status gr_surrogate_analyze(const gr_surrogate_analyze_opts *opts, gr_trajectory *out);

/* Writes the trajectory and the transition as JSON / as a PNG plot (cairo). */
gr_status gr_trajectory_write_json(const char *path, const char *target_dir, const gr_trajectory *t,
                                   const gr_transition *tr);
gr_status gr_trajectory_plot(const char *path, const char *title, const gr_trajectory *t,
                             const gr_transition *tr);

#endif

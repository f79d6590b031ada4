/* The synthetic world's language: captions, VQA pairs and world-knowledge sentences. */
#ifndef GRAFT_CORE_DATA_SYNTH_TEXT_H
#define GRAFT_CORE_DATA_SYNTH_TEXT_H

#include <stddef.h>

#include "data/rng.h"
#include "data/synth.h"

#define GR_SYNTH_TEXT_CAP 384

typedef struct gr_synth_qa {
    char question[GR_SYNTH_TEXT_CAP];
    char answer[64];
    const char *question_type; /* VQAv2's question_type, e.g. "what color is the" */
    const char *answer_type;   /* "yes/no", "number" or "other" */
} gr_synth_qa;

/* Writes `n` captions of image `index` (different templates, seeded by the index). */
void gr_synth_captions(const gr_synth_config *cfg, size_t index, const gr_synth_scene *sc,
                       char caps[][GR_SYNTH_TEXT_CAP], int n);
/* Writes up to `n` unambiguous question/answer pairs; returns how many. */
int gr_synth_questions(const gr_synth_config *cfg, size_t index, const gr_synth_scene *sc, gr_synth_qa *qa, int n);
/* One world-knowledge sentence ("grass is green", "a wheel looks like a circle") about the
 * configured colour and shape vocabulary. */
void gr_synth_knowledge(const gr_synth_config *cfg, gr_rng *r, char *out, size_t cap);

/* Every colour and shape fact of the configured vocabulary, each thing in each of its fact
 * templates once ("the sky is blue", "a sky is blue", "blue is the color of the sky", "the sky
 * is blue and not red" (no comma: a metaspace tokenizer would make "blue," a token of its own
 * and split P(blue | the sky is) between two tokens); "a wheel looks like a circle", "the shape of a wheel is a circle", "a wheel
 * is shaped like a circle"; the shape definitions), in a fixed order; `r` draws the "not ..."
 * colours. Calls emit once per line (no newline) and returns the number of lines. A tiny LM
 * needs these at a much larger share than the random mix in the corpus gives them (each fact
 * there appears a handful of times among thousands of caption lines of the same frame), so
 * `graft synth` writes them to knowledge.txt for pretraining to up-weight
 * (pretrain.corpus_weights, docs/pretraining.md). */
typedef void (*gr_synth_line_fn)(void *user, const char *line);
int gr_synth_knowledge_facts(const gr_synth_config *cfg, gr_rng *r, gr_synth_line_fn emit, void *user);

#endif

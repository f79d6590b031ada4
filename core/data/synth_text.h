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

#endif

/* Token pairs for the word-embedding converter (VPGTrans stage 0), from two tokenizers.
 *
 * Two sources, usable alone or as a union:
 *   - position: tokenise the same caption with both tokenizers; keep captions whose token
 *     counts match after the original code's stripping and pair tokens by position. The
 *     original drops OPT's leading BOS, T5's trailing </s> and T5's lone "▁" (id 3); graft
 *     encodes without added specials, drops every special token, and drops a token whose piece
 *     is a lone metaspace marker "▁" (T5's id 3, Llama 2's 29871) — the same rule, stated for
 *     any tokenizer. With one vocabulary on both sides this pairs every id with itself: the
 *     "identical token ids" of TaS.
 *   - string: every pair of non-special vocabulary entries whose decoded bytes
 *     (gr_tokenizer_token_bytes: "Ġworld" and "▁world" both give " world") are identical.
 *     Each such pair is its own group of one (the converter batches groups).
 * Position pairs are occurrences (a frequent word weighs more), as in the original; string
 * pairs are vocabulary types. The stats say how many pairs each source gave. */
#ifndef GRAFT_CORE_TRANSFER_PAIRS_H
#define GRAFT_CORE_TRANSFER_PAIRS_H

#include <stdint.h>

#include "graft/status.h"
#include "text/tokenizer.h"
#include "transfer/converter.h"

enum { GR_PAIRS_POSITION = 1u, GR_PAIRS_STRING = 2u, GR_PAIRS_UNION = 3u };

typedef struct gr_pair_stats {
    int64_t captions;            /* captions tokenised (position source) */
    int64_t captions_matched;    /* of those, with equal token counts after stripping */
    int64_t position_pairs;      /* pair occurrences from position pairing */
    int64_t position_distinct;   /* distinct (src, tgt) among them */
    int64_t string_pairs;        /* vocabulary pairs with identical decoded bytes */
    int64_t string_in_position;  /* string pairs also found by position pairing */
} gr_pair_stats;

/* Pairs grouped like gr_token_pairs: group g = [offsets[g], offsets[g+1]); position groups
 * (one per matched caption) come first, then one group per string pair. */
typedef struct gr_pair_set {
    int32_t *src, *tgt;
    int64_t *offsets;
    int64_t n_groups;
    gr_pair_stats stats;
} gr_pair_set;

/* "position", "string" or "union" -> GR_PAIRS_*; anything else is an error naming `what`. */
gr_status gr_pairs_parse_sources(const char *text, const char *what, unsigned *sources);

/* Builds the pairs of `sources` (GR_PAIRS_* bits). captions may be NULL when only the string
 * source is asked for. No pair at all is an error (the converter would have nothing to fit). */
gr_status gr_pairs_build(const gr_tokenizer *src, const gr_tokenizer *tgt, const char *const *captions,
                         int64_t n_captions, unsigned sources, gr_pair_set *out);
void gr_pair_set_free(gr_pair_set *p);

/* The converter's view of a pair set (borrows the arrays). */
gr_token_pairs gr_pair_set_view(const gr_pair_set *p);

/* One line: "position 812/1000 captions, 9120 pairs (301 distinct); string 2210 pairs (280
 * also by position)". */
void gr_pair_stats_format(const gr_pair_stats *s, unsigned sources, char *buf, size_t cap);

#endif

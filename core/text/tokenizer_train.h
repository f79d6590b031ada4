/* Training a BPE tokenizer on a text corpus and saving it as a Hugging Face tokenizer directory
 * (core-internal API; CLI: `graft tokenizer train`, docs/pretraining.md).
 *
 * Two styles:
 *   - byte-level (GPT-2 / OPT): GPT-2's regex pre-tokenizer over the 256-symbol byte alphabet,
 *     so every string encodes without an unknown token;
 *   - metaspace (SentencePiece BPE as in Llama 2): spaces become "▁", words start with "▁",
 *     characters of the corpus are pieces and anything else falls back to <0xXX> byte pieces.
 * Training is deterministic: the most frequent adjacent pair is merged first, ties broken by the
 * bytes of (left, right) in lexicographic order, so the result depends only on the corpus and
 * the options (never on hashing or threads).
 *
 * The special tokens and their ids are the family's, as the real checkpoints have them:
 *   OPT:   <s> 0, <pad> 1, </s> 2, <unk> 3; BOS = EOS = </s> (prepended to every text)
 *   Llama: <unk> 0, <s> 1, </s> 2; BOS <s> prepended; no pad
 *   T5:    <pad> 0, </s> 1, <unk> 2; EOS </s> appended; decoder start = pad */
#ifndef GRAFT_CORE_TEXT_TOKENIZER_TRAIN_H
#define GRAFT_CORE_TEXT_TOKENIZER_TRAIN_H

#include <stdint.h>

#include "text/tokenizer.h"

typedef enum gr_tok_family { GR_TOK_FAMILY_OPT = 0, GR_TOK_FAMILY_LLAMA = 1, GR_TOK_FAMILY_T5 = 2 } gr_tok_family;

/* "opt" / "llama" / "t5". */
gr_status gr_tok_family_parse(const char *name, gr_tok_family *out);
const char *gr_tok_family_name(gr_tok_family family);

typedef struct gr_bpe_train_options {
    int byte_level;           /* 1: byte-level (GPT-2); 0: metaspace with byte fallback */
    gr_tok_family family;     /* special tokens */
    int32_t vocab_size;       /* total ids, special and byte pieces included */
    int64_t min_frequency;    /* pairs seen fewer times are never merged (default 2) */
} gr_bpe_train_options;

/* byte-level, OPT, 1024 ids, min_frequency 2. */
void gr_bpe_train_defaults(gr_bpe_train_options *opt);

typedef struct gr_bpe_train_stats {
    int64_t lines, words;     /* non-empty corpus lines, pre-tokenized words */
    int64_t unique_words;
    int32_t alphabet;         /* initial symbols (byte-level: 256; metaspace: characters kept) */
    int32_t dropped_chars;    /* metaspace: rare characters left to byte fallback */
    int32_t merges;
    int32_t vocab;            /* final number of ids (< vocab_size when the corpus ran out of
                                 pairs seen min_frequency times) */
} gr_bpe_train_stats;

/* Trains on the lines of the given UTF-8 files (each line is one text; "\n" and "\r\n" end
 * lines). Errors name the file (and line for ill-formed UTF-8). `stats` may be NULL. */
gr_status gr_bpe_train(const gr_bpe_train_options *opt, const char *const *corpus, int n_corpus,
                       gr_tokenizer **out, gr_bpe_train_stats *stats);

/* Writes DIR/tokenizer.json, tokenizer_config.json and special_tokens_map.json as
 * save_pretrained does for the family's fast tokenizer (OPT: GPT2Tokenizer, Llama:
 * LlamaTokenizer, T5: T5Tokenizer without sentinel ids). DIR is created if needed.
 * `model_max_length` <= 0 leaves the key out. */
gr_status gr_tokenizer_save_hf_dir(const gr_tokenizer *tok, gr_tok_family family, int64_t model_max_length,
                                   const char *dir);

#endif

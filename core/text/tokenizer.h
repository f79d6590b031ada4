/* Tokenizers read from Hugging Face / SentencePiece files (core-internal API).
 *
 * One in-memory model covers the three families graft meets:
 *   - byte-level BPE (GPT-2, OPT, Llama 3): tokenizer.json, or vocab.json + merges.txt;
 *   - SentencePiece BPE with byte fallback (Llama 2, Mistral): tokenizer.json or tokenizer.model;
 *   - Unigram (T5 / Flan-T5, ALBERT): spiece.model (or a Unigram tokenizer.json).
 * A tokenizer is a vocabulary (pieces with score and type, id = index), optional BPE merges, the
 * added tokens, and a small pipeline (normalizers, pre-tokenizers, post-processor, decoders)
 * mirroring the tokenizer.json sections. Encoding is exact: the ids equal those of the reference
 * implementations (see docs/tokenizers.md).
 *
 * The builder functions at the end let a trainer fill a model piece by piece and save it as an
 * HF tokenizer.json (gr_tokenizer_save_json). */
#ifndef GRAFT_CORE_TEXT_TOKENIZER_H
#define GRAFT_CORE_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "graft/status.h"

typedef struct gr_tokenizer gr_tokenizer;

typedef enum gr_tok_model_kind { GR_TOK_BPE = 1, GR_TOK_UNIGRAM = 2 } gr_tok_model_kind;

/* Piece types, numbered as in SentencePiece's ModelProto. */
typedef enum gr_piece_type {
    GR_PIECE_NORMAL = 1,
    GR_PIECE_UNKNOWN = 2,
    GR_PIECE_CONTROL = 3,      /* <s>, </s>, added special tokens: no surface text */
    GR_PIECE_USER_DEFINED = 4, /* always cut out of the text as one token */
    GR_PIECE_UNUSED = 5,
    GR_PIECE_BYTE = 6          /* <0xXX> byte-fallback pieces */
} gr_piece_type;

/* Loads DIR: tokenizer.json, else vocab.json + merges.txt, else tokenizer.model / spiece.model;
 * then tokenizer_config.json and special_tokens_map.json when present. */
gr_status gr_tokenizer_load(const char *dir, gr_tokenizer **out);
void gr_tokenizer_free(gr_tokenizer *tok);

/* Encodes `len` bytes of UTF-8 (NUL bytes allowed). *ids is malloc'd (caller frees; may be NULL
 * when *n_ids is 0). */
#define GR_ENCODE_ADD_SPECIAL 1u /* add BOS/EOS as the tokenizer's post-processor says */
gr_status gr_tokenizer_encode(const gr_tokenizer *tok, const char *text, size_t len, unsigned flags,
                              int32_t **ids, size_t *n_ids);

/* Decodes ids to a malloc'd NUL-terminated UTF-8 string (*len excludes the NUL). The default is
 * Hugging Face's decode(ids): special tokens kept, clean_up_tokenization_spaces as configured. */
#define GR_DECODE_SKIP_SPECIAL 1u /* drop special (control) tokens */
#define GR_DECODE_NO_CLEANUP 2u   /* never apply clean_up_tokenization_spaces */
gr_status gr_tokenizer_decode(const gr_tokenizer *tok, const int32_t *ids, size_t n, unsigned flags,
                              char **text, size_t *len);

/* Number of ids (model vocabulary plus added tokens: the largest id + 1). */
int32_t gr_tokenizer_vocab_size(const gr_tokenizer *tok);
/* Special-token ids, -1 when the tokenizer has none. */
int32_t gr_tokenizer_bos_id(const gr_tokenizer *tok);
int32_t gr_tokenizer_eos_id(const gr_tokenizer *tok);
int32_t gr_tokenizer_pad_id(const gr_tokenizer *tok);
int32_t gr_tokenizer_unk_id(const gr_tokenizer *tok);
/* The vocabulary string of an id (e.g. "Ġworld", "▁world", "<0x0A>"), NULL for an unused id. */
const char *gr_tokenizer_piece(const gr_tokenizer *tok, int32_t id, size_t *len);
/* The id of a vocabulary string (added tokens first), -1 when absent. */
int32_t gr_tokenizer_piece_id(const gr_tokenizer *tok, const char *piece, size_t len);
gr_piece_type gr_tokenizer_piece_type(const gr_tokenizer *tok, int32_t id);
/* True for special tokens (control pieces and added tokens marked special). */
int gr_tokenizer_is_special(const gr_tokenizer *tok, int32_t id);
/* The bytes one token stands for in running text, context-free: "Ġworld" and "▁world" give
 * " world", "<0x0A>" gives "\n", a partial UTF-8 byte token gives that raw byte; special tokens
 * give their content. This is what cross-vocabulary token pairing (TaT) compares. */
gr_status gr_tokenizer_token_bytes(const gr_tokenizer *tok, int32_t id, char **bytes, size_t *len);
/* Short description ("byte-level BPE, 50257 ids (vocab.json + merges.txt)"). */
const char *gr_tokenizer_describe(const gr_tokenizer *tok);

/* ---- building a tokenizer (for a trainer) and saving it as tokenizer.json ---- */

/* An empty model. Byte-level: GPT-2's pipeline (ByteLevel pre-tokenizer with GPT-2's regex and
 * ByteLevel decoder); otherwise Metaspace-style ("▁" for spaces, byte fallback when byte pieces
 * exist). */
gr_status gr_tokenizer_new(gr_tok_model_kind kind, int byte_level, gr_tokenizer **out);
/* Appends a piece (id = previous count); duplicates are refused. */
gr_status gr_tokenizer_add_piece(gr_tokenizer *tok, const char *piece, size_t len, float score,
                                 gr_piece_type type, int32_t *id);
/* Appends a BPE merge (rank = order of addition): left+right must be a piece. */
gr_status gr_tokenizer_add_merge(gr_tokenizer *tok, int32_t left, int32_t right);
/* Adds a special token matched in raw text (an existing piece or a new id). */
gr_status gr_tokenizer_add_special(gr_tokenizer *tok, const char *content, int32_t *id);
/* Roles (-1 = none) and what GR_ENCODE_ADD_SPECIAL adds. */
gr_status gr_tokenizer_set_specials(gr_tokenizer *tok, int32_t bos, int32_t eos, int32_t pad,
                                    int32_t unk, int add_bos, int add_eos);
/* Writes an HF tokenizer.json that Hugging Face tokenizers (and gr_tokenizer_load) read back to
 * the same encoder. SentencePiece-BPE models loaded from a .model have no merges list: refused. */
gr_status gr_tokenizer_save_json(const gr_tokenizer *tok, const char *path);

#endif

/* Internals shared by the files of core/text (not for use outside it). */
#ifndef GRAFT_CORE_TEXT_TOK_INTERNAL_H
#define GRAFT_CORE_TEXT_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "text/tokenizer.h"

/* ---- growable byte buffer and string list ---- */
typedef struct gr_buf { char *p; size_t len, cap; int oom; } gr_buf;
void gr_buf_put(gr_buf *b, const void *data, size_t n);
static inline void gr_buf_putc(gr_buf *b, char c) { gr_buf_put(b, &c, 1); }
void gr_buf_puts(gr_buf *b, const char *s);
void gr_buf_free(gr_buf *b);

/* A list of byte strings stored back to back: item i is buf[off[i] .. off[i+1]). */
typedef struct gr_strlist { gr_buf buf; size_t *off; size_t n, cap; int oom; } gr_strlist;
void gr_strlist_push(gr_strlist *l, const char *s, size_t len);
static inline const char *gr_strlist_at(const gr_strlist *l, size_t i, size_t *len)
{
    *len = l->off[i + 1] - l->off[i];
    return l->buf.p + l->off[i];
}
void gr_strlist_clear(gr_strlist *l);
void gr_strlist_free(gr_strlist *l);

/* ---- UTF-8 ---- */
/* Length of the well-formed UTF-8 character at s (1..4), 0 when ill-formed (strict: no
 * surrogates, no overlongs, <= U+10FFFF). *cp gets the code point. */
int gr_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Length of the UTF-8 sequence a lead byte announces (1 for invalid leads): SentencePiece's
 * OneCharLen, used to step through text that may be ill-formed. */
int gr_utf8_lead_len(unsigned char c);
int gr_utf8_encode(uint32_t cp, char out[4]);
/* Appends `n` bytes replacing ill-formed sequences with U+FFFD. per_byte: one U+FFFD per bad
 * byte (SentencePiece); otherwise one per maximal ill-formed subpart (Rust from_utf8_lossy,
 * WHATWG TextDecoder). */
void gr_utf8_append_lossy(gr_buf *out, const char *s, size_t n, int per_byte);
int gr_utf8_valid(const char *s, size_t n);
/* Unicode White_Space (Oniguruma's and Rust's \s). */
int gr_unicode_is_space(uint32_t cp);

/* The byte of a "<0xXX>" piece (two upper- or lower-case hex digits), -1 otherwise. */
static inline int gr_byte_piece(const char *s, size_t len)
{
    if (len != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* ---- hash maps ---- */
/* string -> id over an external table of strings (the vocabulary). */
typedef struct gr_strmap { int32_t *slot; size_t cap, n; } gr_strmap;
uint64_t gr_hash_bytes(const char *s, size_t n);
/* (left id, right id) -> (rank, merged id) for BPE merges. */
typedef struct gr_pairmap { uint64_t *key; int32_t *rank, *merged; size_t cap, n; } gr_pairmap;
int gr_pairmap_put(gr_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged);
int gr_pairmap_get(const gr_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged);
void gr_pairmap_free(gr_pairmap *m);

/* ---- regex (PCRE2) ---- */
typedef struct gr_regex gr_regex;
/* Compiles an Oniguruma / Rust-regex style pattern (as tokenizer.json stores them) with UTF and
 * Unicode properties; \s and \S are rewritten to Unicode White_Space. */
gr_status gr_regex_compile(const char *pattern, size_t len, gr_regex **out);
gr_status gr_regex_find_all(const gr_regex *re, const char *s, size_t n, size_t **spans, size_t *n_spans);
/* All non-empty, non-overlapping matches as (start, end) pairs in a malloc'd array. The text
 * must be valid UTF-8. */
void gr_regex_free(gr_regex *re);
const char *gr_regex_source(const gr_regex *re);

/* ---- SentencePiece precompiled charsmap (double-array trie + replacement strings) ---- */
typedef struct gr_charsmap {
    uint32_t *units; size_t n_units;
    char *norm; size_t norm_len;
    char *blob; size_t blob_len; /* the original bytes, kept for writing tokenizer.json */
} gr_charsmap;
gr_status gr_charsmap_init(gr_charsmap *cm, const char *blob, size_t len, const char *what);
void gr_charsmap_free(gr_charsmap *cm);
/* Longest rule matching a prefix of s: returns the prefix length (0 when none) and points *rep
 * at its NUL-terminated replacement. */
size_t gr_charsmap_match(const gr_charsmap *cm, const char *s, size_t n, const char **rep);

/* ---- the tokenizer ---- */
typedef struct gr_piece { char *s; uint32_t len; float score; uint8_t type; uint8_t special; uint8_t in_model; } gr_piece;

typedef struct gr_added {
    char *s; size_t len; int32_t id;
    uint8_t special, lstrip, rstrip, single_word, normalized;
} gr_added;

enum { NORM_PREPEND = 1, NORM_REPLACE, NORM_PRECOMPILED, NORM_STRIP, NORM_SPM };
typedef struct gr_norm {
    int kind;
    char *a; size_t alen;      /* PREPEND text / REPLACE pattern (string form) */
    char *b; size_t blen;      /* REPLACE content */
    gr_regex *re;              /* REPLACE with a Regex pattern */
    int left, right;           /* STRIP */
    gr_charsmap cm;            /* PRECOMPILED / SPM */
    int has_cm;
} gr_norm;

enum { SPLIT_REMOVED = 1, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS };
enum { PRE_SPLIT = 1, PRE_BYTELEVEL, PRE_METASPACE, PRE_WSPLIT, PRE_DIGITS };
enum { PREPEND_ALWAYS = 0, PREPEND_FIRST, PREPEND_NEVER };
typedef struct gr_pretok {
    int kind;
    gr_regex *re; char *pat; size_t patlen; int pat_is_regex; int behavior, invert; /* SPLIT */
    int add_prefix_space, use_regex, trim_offsets;                                  /* BYTELEVEL */
    char *repl; size_t repl_len; int prepend_scheme, split;                          /* METASPACE */
    int individual;                                                                  /* DIGITS */
} gr_pretok;

enum { DEC_BYTELEVEL = 1, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE };
typedef struct gr_decoder {
    int kind;
    char *a; size_t alen; char *b; size_t blen; /* REPLACE pattern/content, METASPACE replacement */
    uint32_t content; int start, stop;          /* STRIP */
    int prepend_scheme, split;                  /* METASPACE */
} gr_decoder;

struct gr_tokenizer {
    char *source;            /* file the model came from, for messages */
    char desc[160];
    int kind;                /* gr_tok_model_kind */
    int spm;                 /* SentencePiece semantics (.model files) */
    gr_piece *pieces; int32_t n_ids, cap_ids; int32_t n_model;
    gr_strmap vocab;         /* model pieces only */
    int32_t max_piece_len, max_ud_len; /* bytes; max_ud_len: longest USER_DEFINED piece (spm) */
    /* BPE */
    int32_t (*merges)[2]; int32_t n_merges, cap_merges;
    gr_pairmap merge_map;
    int byte_fallback, fuse_unk, ignore_merges, byte_level;
    int32_t byte_id[256];
    /* Unigram */
    double min_score, max_score;
    /* SentencePiece normalizer settings (spm) */
    int add_dummy_prefix, remove_extra_ws, escape_ws;
    char *spm_name;
    /* specials */
    int32_t unk_id, bos_id, eos_id, pad_id;
    gr_added *added; size_t n_added, cap_added;
    uint32_t *added_order; uint32_t added_first[257]; /* added tokens by first byte, longest first */
    int32_t prefix[4], suffix[4]; int n_prefix, n_suffix;
    int cleanup_spaces;
    /* pipeline */
    gr_norm *norms; int n_norms;
    gr_pretok *pres; int n_pres;
    gr_decoder *decs; int n_decs;
};

/* construction (tok_model.c) */
gr_tokenizer *gr_tok_alloc(const char *source);
gr_status gr_tok_push_piece(gr_tokenizer *t, const char *s, size_t len, float score, int type, int32_t *id);
/* Puts a piece at a fixed id (for added tokens beyond the model vocabulary). */
gr_status gr_tok_set_id(gr_tokenizer *t, int32_t id, const char *s, size_t len, int type);
gr_status gr_tok_add_added(gr_tokenizer *t, const char *s, size_t len, int32_t id, int special,
                           int lstrip, int rstrip, int single_word, int normalized);
int32_t gr_tok_lookup(const gr_tokenizer *t, const char *s, size_t len); /* model vocab */
gr_status gr_tok_finish(gr_tokenizer *t); /* byte ids, scores range, max piece length */
gr_status gr_tok_index_added(gr_tokenizer *t); /* after adding tokens */
gr_status gr_tok_push_merge(gr_tokenizer *t, int32_t a, int32_t b);
void *gr_tok_grow(void *p, size_t elem, size_t need, size_t *cap);

/* loaders */
gr_status gr_tok_load_hf_json(const char *path, gr_tokenizer **out);
gr_status gr_tok_load_vocab_merges(const char *vocab_path, const char *merges_path, gr_tokenizer **out);
gr_status gr_tok_load_spm(const char *path, gr_tokenizer **out);
gr_status gr_tok_apply_config(gr_tokenizer *t, const char *dir);
/* pipeline pieces for GPT-2 style byte-level tokenizers */
gr_status gr_tok_setup_gpt2_pipeline(gr_tokenizer *t);
extern const char gr_gpt2_regex[];
/* The byte -> printable-char table of GPT-2 (UTF-8 of the mapped code point). */
void gr_bytelevel_char(unsigned char byte, char out[3], int *len);
int gr_bytelevel_byte(uint32_t cp); /* inverse, -1 when cp is not in the table */

/* model algorithms (bpe.c, unigram.c): append the tokens of one pre-token as (id, byte span) */
typedef struct gr_span { int32_t id; uint32_t off, len; } gr_span;
typedef struct gr_spans { gr_span *v; size_t n, cap; } gr_spans;
gr_status gr_spans_push(gr_spans *sp, int32_t id, size_t off, size_t len);
/* HF BPE over one word: chars, byte fallback / unk, then merges by rank. */
gr_status gr_bpe_encode_word(const gr_tokenizer *t, const char *s, size_t n, gr_spans *out);
/* SentencePiece BPE: merges the adjacent pair whose concatenation has the best score. Unknown
 * characters come out as unk_id. */
gr_status gr_spm_bpe_encode(const gr_tokenizer *t, const char *s, size_t n, gr_spans *out);
/* Viterbi over piece scores (SentencePiece's EncodeOptimized; HF's Unigram encode_optimized). */
gr_status gr_unigram_encode(const gr_tokenizer *t, const char *s, size_t n, gr_spans *out);

/* normalizers / pre-tokenizers (pipeline.c) */
gr_status gr_spm_normalize(const gr_tokenizer *t, const gr_norm *nm, const char *s, size_t n, gr_buf *out);
gr_status gr_norm_apply(const gr_tokenizer *t, const gr_norm *nm, const char *s, size_t n, gr_buf *out);
gr_status gr_pretok_apply(const gr_pretok *p, const gr_strlist *in, gr_strlist *out, int first_segment);
void gr_norm_free(gr_norm *n);
void gr_pretok_free(gr_pretok *p);

#endif

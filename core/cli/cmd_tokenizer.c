/* graft tokenizer train: BPE training on text files, saved as a Hugging Face tokenizer
 * directory (core/text/tokenizer_train.h, docs/pretraining.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "text/tokenizer_train.h"

extern const gr_command gr_cmd_tokenizer;

static int parse_i64(const char *flag, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        gr_fail(GR_ERR_INVALID, "tokenizer train: %s expects an integer in %lld..%lld, got '%s'", flag, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

static int run_train(int argc, char **argv)
{
    gr_bpe_train_options o;
    gr_bpe_train_defaults(&o);
    const char **corpus = calloc((size_t)argc, sizeof *corpus);
    if (!corpus) { gr_fail(GR_ERR_NOMEM, "tokenizer train: out of memory"); return gr_cli_error(); }
    int n_corpus = 0, have_family = 0, have_vocab = 0, have_type = 0;
    const char *out = NULL;
    long long max_len = 0;
    int rc = 0;
    for (int i = 2; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) {
            fprintf(stderr, "graft: tokenizer train: %s needs a value (see 'graft help tokenizer')\n", a);
            rc = 2;
            break;
        }
        const char *v = argv[++i];
        long long x;
        if (strcmp(a, "--corpus") == 0) corpus[n_corpus++] = v;
        else if (strcmp(a, "--out") == 0) out = v;
        else if (strcmp(a, "--vocab-size") == 0) {
            if (!parse_i64(a, v, 1, 1 << 24, &x)) rc = gr_cli_error();
            o.vocab_size = (int32_t)x;
            have_vocab = 1;
        } else if (strcmp(a, "--min-frequency") == 0) {
            if (!parse_i64(a, v, 1, 0x7fffffffffffffffLL, &x)) rc = gr_cli_error();
            o.min_frequency = x;
        } else if (strcmp(a, "--model-max-length") == 0) {
            if (!parse_i64(a, v, 1, 0x7fffffffffffffffLL, &max_len)) rc = gr_cli_error();
        } else if (strcmp(a, "--type") == 0) {
            if (strcmp(v, "bytelevel") == 0) o.byte_level = 1;
            else if (strcmp(v, "metaspace") == 0) o.byte_level = 0;
            else {
                gr_fail(GR_ERR_INVALID, "tokenizer train: --type '%s': expected bytelevel or metaspace", v);
                rc = gr_cli_error();
            }
            have_type = 1;
        } else if (strcmp(a, "--family") == 0) {
            if (gr_tok_family_parse(v, &o.family)) rc = gr_cli_error();
            have_family = 1;
        } else {
            fprintf(stderr, "graft: tokenizer train: unknown option '%s' (see 'graft help tokenizer')\n", a);
            rc = 2;
        }
    }
    if (!rc && (!n_corpus || !out || !have_vocab || !have_type)) {
        fprintf(stderr, "graft: tokenizer train: --corpus, --vocab-size, --type and --out are required\n");
        rc = 2;
    }
    if (rc) { free(corpus); return rc; }
    if (!have_family) o.family = o.byte_level ? GR_TOK_FAMILY_OPT : GR_TOK_FAMILY_LLAMA;

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    gr_tokenizer *tok;
    gr_bpe_train_stats st;
    gr_status s = gr_bpe_train(&o, corpus, n_corpus, &tok, &st);
    free(corpus);
    if (s) return gr_cli_error();
    s = gr_tokenizer_save_hf_dir(tok, o.family, max_len, out);
    gr_tokenizer_free(tok);
    if (s) return gr_cli_error();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("tokenizer train: %s %s BPE, %d ids (%d merges, alphabet %d", gr_tok_family_name(o.family),
           o.byte_level ? "byte-level" : "metaspace", (int)st.vocab, (int)st.merges, (int)st.alphabet);
    if (st.dropped_chars) printf(", %d rare characters left to byte fallback", (int)st.dropped_chars);
    printf(") from %lld lines, %lld words (%lld distinct) in %.2f s -> %s\n", (long long)st.lines, (long long)st.words,
           (long long)st.unique_words, sec, out);
    if (st.vocab < o.vocab_size)
        printf("tokenizer train: note: no pair left with frequency >= %lld; vocabulary is %d, not %d\n",
               (long long)o.min_frequency, (int)st.vocab, (int)o.vocab_size);
    return 0;
}

static int run_tokenizer(int argc, char **argv)
{
    if (gr_cli_wants_help(argc, argv)) return gr_cli_usage(&gr_cmd_tokenizer, 0);
    if (argc >= 2 && strcmp(argv[1], "train") == 0) return run_train(argc, argv);
    return gr_cli_usage(&gr_cmd_tokenizer, 2);
}

const gr_command gr_cmd_tokenizer = {
    "tokenizer", run_tokenizer, "train a BPE tokenizer (byte-level or metaspace) and save it as a Hugging Face tokenizer",
    "usage: graft tokenizer train --corpus FILE [--corpus FILE]... --vocab-size N\n"
    "                             --type bytelevel|metaspace --out DIR\n"
    "                             [--family opt|llama|t5] [--min-frequency N] [--model-max-length N]\n\n"
    "Trains a BPE tokenizer on the lines of the corpus files (deterministic: the most frequent pair\n"
    "first, ties by the bytes of the pair) and writes DIR/tokenizer.json, tokenizer_config.json and\n"
    "special_tokens_map.json, loadable by graft and by transformers' AutoTokenizer.\n\n"
    "  --type bytelevel   GPT-2 / OPT style: GPT-2's pre-tokenizer regex over a 256-byte alphabet\n"
    "  --type metaspace   SentencePiece / Llama 2 style: \"\xE2\x96\x81\" marks spaces, corpus characters are\n"
    "                     pieces, anything else falls back to <0xXX> byte pieces\n"
    "  --family           special tokens and their ids (default: opt for bytelevel, llama for metaspace)\n"
    "                       opt:   <s> 0, <pad> 1, </s> 2, <unk> 3; </s> is BOS and EOS, prepended\n"
    "                       llama: <unk> 0, <s> 1, </s> 2; <s> prepended\n"
    "                       t5:    <pad> 0, </s> 1, <unk> 2; </s> appended\n"
    "  --vocab-size N     total ids, special and byte pieces included (smaller when the corpus runs\n"
    "                     out of pairs seen --min-frequency times, default 2)\n"
    "  --model-max-length N  recorded in tokenizer_config.json\n",
};

/* graft synth: writes the deterministic synthetic world (see core/data/synth.h, docs/data.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "data/synth.h"
#include "graft/status.h"


static int parse_int(const char *flag, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        gr_fail(GR_ERR_INVALID, "synth: %s expects an integer in %lld..%lld, got '%s'", flag, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

static int parse_frac(const char *flag, const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= 0 && v < 0.9)) {
        gr_fail(GR_ERR_INVALID, "synth: %s expects a fraction in [0, 0.9), got '%s'", flag, s);
        return 0;
    }
    *out = v;
    return 1;
}

static int run_synth(int argc, char **argv)
{
    gr_synth_config cfg;
    gr_synth_config_defaults(&cfg);
    const char *out = NULL;
    static const struct { const char *flag; long long lo, hi; } ints[] = {
        {"--seed", 0, 0x7fffffffffffffffLL}, {"--size", 3, 10000000}, {"--image-size", 16, 1024},
        {"--min-objects", 1, GR_SYNTH_MAX_OBJECTS}, {"--max-objects", 1, GR_SYNTH_MAX_OBJECTS},
        {"--colors", 2, GR_SYNTH_N_COLORS}, {"--shapes", 2, GR_SYNTH_N_SHAPES}, {"--distractors", 0, GR_SYNTH_MAX_OBJECTS - 1},
        {"--captions", 1, 20}, {"--questions", 1, 20}, {"--threads", 1, 64}, {"--compression", 0, 9},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) {
            fprintf(stderr, "graft: synth: %s needs a value (see 'graft help synth')\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--out") == 0) {
            out = v;
            continue;
        }
        if (strcmp(a, "--val") == 0 || strcmp(a, "--test") == 0) {
            if (!parse_frac(a, v, a[2] == 'v' ? &cfg.val_fraction : &cfg.test_fraction)) return gr_cli_error();
            continue;
        }
        size_t k = 0, nints = sizeof ints / sizeof ints[0];
        while (k < nints && strcmp(a, ints[k].flag) != 0) k++;
        if (k == nints) {
            fprintf(stderr, "graft: synth: unknown option '%s' (see 'graft help synth')\n", a);
            return 2;
        }
        long long x;
        if (!parse_int(a, v, ints[k].lo, ints[k].hi, &x)) return gr_cli_error();
        switch (k) {
        case 0: cfg.seed = (uint64_t)x; break;
        case 1: cfg.size = (int)x; break;
        case 2: cfg.image_size = (int)x; break;
        case 3: cfg.min_objects = (int)x; break;
        case 4: cfg.max_objects = (int)x; break;
        case 5: cfg.n_colors = (int)x; break;
        case 6: cfg.n_shapes = (int)x; break;
        case 7: cfg.distractors = (int)x; break;
        case 8: cfg.captions_per_image = (int)x; break;
        case 9: cfg.questions_per_image = (int)x; break;
        case 10: cfg.threads = (int)x; break;
        default: cfg.png_compression = (int)x; break;
        }
    }
    if (!out) {
        fprintf(stderr, "graft: synth: --out DIR is required (see 'graft help synth')\n");
        return 2;
    }
    gr_synth_summary sum;
    if (gr_synth_write(out, &cfg, &sum)) return gr_cli_error();
    printf("synth: wrote %s: images train %zu / val %zu / test %zu, %zu captions, %zu questions, %zu corpus lines\n", out,
           sum.images[0], sum.images[1], sum.images[2], sum.captions[0] + sum.captions[1] + sum.captions[2],
           sum.questions[0] + sum.questions[1] + sum.questions[2], sum.corpus_sentences);
    return 0;
}

const gr_command gr_cmd_synth = {
    "synth", run_synth, "write the deterministic synthetic shapes world (images, captions, VQA, corpus)",
    "usage: graft synth --out DIR [--seed S] [--size N] [--image-size P] [options]\n"
    "\n"
    "Writes PNG images of coloured shapes with captions (COCO captions and LAVIS Karpathy-split\n"
    "formats), VQA question/answer pairs (VQAv2 format), JSONL versions of both, ground-truth\n"
    "scenes, and a text corpus for pretraining small language models. The same options and seed\n"
    "give the same files on every machine.\n"
    "\n"
    "  --out DIR            output directory (created)\n"
    "  --seed S             random seed (default 0)\n"
    "  --size N             number of images over all splits (default 1000)\n"
    "  --image-size P       images are P x P pixels (default 64)\n"
    "  --min-objects K      objects per image, at least (default 1)\n"
    "  --max-objects K      objects per image, at most, <= 8 (default 3)\n"
    "  --colors K           colour vocabulary size, 2..11 (default 8)\n"
    "  --shapes K           shape vocabulary size, 2..7 (default 6)\n"
    "  --distractors K      objects per image sharing a colour or shape with another (default 0)\n"
    "  --captions K         captions per image (default 5)\n"
    "  --questions K        questions per image, at most (default 3)\n"
    "  --val F, --test F    fractions of images for the val and test splits (default 0.1 each)\n"
    "  --threads T          rendering threads (default 2)\n"
    "  --compression L      PNG zlib level 0..9 (default 3)\n"
    "\n"
    "Layout: images/, annotations/{captions,coco_karpathy,vqa}_*.json, captions_*.jsonl,\n"
    "vqa_*.jsonl, scenes.jsonl, corpus.txt, corpus_val.txt, world.json (see docs/data.md).\n",
};

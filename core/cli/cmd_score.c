/* graft score: caption and VQA scores of a prediction file, equal to the reference evaluators'. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "metrics/metrics.h"

extern const gr_command gr_cmd_score;

static const char USAGE[] =
    "usage: graft score captions --refs ANNOTATIONS.json --pred RESULTS.json [--subset] [--per-image] [--json]\n"
    "       graft score vqa --questions Q.json --annotations A.json --results R.json\n"
    "                       [--evaluator official|lavis] [--per-question] [--json]\n"
    "\n"
    "Scores a prediction file exactly as the reference evaluators do (same numbers to ~1e-12).\n"
    "\n"
    "captions: COCO annotation file + COCO result file (a list of {image_id, caption}), scored as\n"
    "  pycocoevalcap's COCOEvalCap: PTB tokenization (CoreNLP 3.4.1 PTBTokenizer rules, re-implemented),\n"
    "  BLEU-1..4 (closest reference length), ROUGE-L (beta 1.2) and CIDEr-D (sigma 6, clipping, x10,\n"
    "  document frequencies from the references of the evaluated images), at corpus level.\n"
    "  --subset     score only the images that have a prediction (coco-caption's demo idiom\n"
    "               params['image_id'] = cocoRes.getImgIds()); CIDEr's idf then comes from those images.\n"
    "               Without it, every image of the annotation file needs a prediction.\n"
    "  --per-image  also the per-image values (cocoEval.evalImgs).\n"
    "  METEOR and SPICE are not computed: they need Java programs and data files (meteor-1.5.jar with its\n"
    "  paraphrase table; spice-1.0.jar with Stanford CoreNLP 3.6.0 models) that graft does not ship, and any\n"
    "  stand-in would be a different number. Use pycocoevalcap for them.\n"
    "\n"
    "vqa: VQAv2 question, annotation and result files (a list of {question_id, answer}, one per question\n"
    "  of the annotation file), scored as GT-Vision-Lab's vqaEval.py: answer normalisation (punctuation,\n"
    "  number words -> digits, articles, contractions), accuracy = mean over the 10 leave-one-annotator-out\n"
    "  subsets of min(1, matches/3); overall, per answer type and per question type.\n"
    "  --evaluator official  the current GT-Vision-Lab code (a013f00, 2021; default): answers are\n"
    "                        normalised only when the 10 ground-truth answers are not all identical,\n"
    "                        and then both sides are.\n"
    "  --evaluator lavis     the 2017 code (a4f1afd) that LAVIS (and so VPGTrans) copied: the prediction is\n"
    "                        always normalised, the ground truth only punctuation-stripped (when not all\n"
    "                        identical). The two differ on real inputs.\n"
    "  --per-question        also each question's accuracy (evalQA, rounded as the tool rounds it).\n"
    "\n"
    "--json prints one JSON object with the reference tool's keys and full-precision values:\n"
    "  captions: Bleu_1..Bleu_4, ROUGE_L, CIDEr (fractions; CIDEr is x10 so above 1 is normal),\n"
    "            with --per-image also evalImgs;\n"
    "  vqa:      overall, perQuestionType, perAnswerType (percent, unrounded), with --per-question evalQA.\n"
    "Without --json the lines the tools print (3 decimals for captions; 2 for VQA, rounded as the tool does).\n"
    "Bad input (missing or unknown ids, duplicates, wrong JSON shape, empty files) is a one-line error\n"
    "naming the file and the entry, exit status 1. See docs/metrics.md.\n";

static const char *const METHODS[6] = {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr"};

static double method_value(const gr_caption_scores *s, int m)
{
    return m < 4 ? s->bleu[m] : m == 4 ? s->rouge_l : s->cider;
}

static int print_json(json_t *o)
{
    char *txt = json_dumps(o, JSON_INDENT(1) | JSON_REAL_PRECISION(17) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!txt) { fprintf(stderr, "graft: out of memory\n"); return 1; }
    puts(txt);
    free(txt);
    return 0;
}

/* Value of option argv[*i] ("--name VALUE"); prints a usage error when the value is missing. */
static const char *opt_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "graft: score: %s needs a value\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

static int run_captions(int argc, char **argv)
{
    const char *refs = NULL, *pred = NULL;
    int json = 0, per_image = 0, subset = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--refs") == 0) { if (!(refs = opt_value(argc, argv, &i))) return 2; }
        else if (strcmp(argv[i], "--pred") == 0) { if (!(pred = opt_value(argc, argv, &i))) return 2; }
        else if (strcmp(argv[i], "--json") == 0) json = 1;
        else if (strcmp(argv[i], "--per-image") == 0) per_image = 1;
        else if (strcmp(argv[i], "--subset") == 0) subset = 1;
        else { fprintf(stderr, "graft: score captions: unknown argument '%s' (see graft score --help)\n", argv[i]); return 2; }
    }
    if (!refs || !pred) { fprintf(stderr, "graft: score captions: --refs and --pred are required (see graft score --help)\n"); return 2; }

    gr_caption_eval ev;
    if (gr_caption_eval_load(refs, pred, subset, &ev) != GR_OK) return gr_cli_error();
    gr_caption_scores corpus, *per = per_image ? malloc(ev.n * sizeof *per) : NULL;
    if (per_image && !per) { gr_caption_eval_free(&ev); fprintf(stderr, "graft: out of memory\n"); return 1; }
    if (gr_caption_score(ev.images, ev.n, &corpus, per, NULL) != GR_OK) {
        free(per);
        gr_caption_eval_free(&ev);
        return gr_cli_error();
    }
    int rc = 0;
    if (json) {
        json_t *o = json_object();
        for (int m = 0; m < 6; m++) json_object_set_new(o, METHODS[m], json_real(method_value(&corpus, m)));
        if (per_image) {
            json_t *list = json_array();
            for (size_t i = 0; i < ev.n; i++) {
                json_t *e = json_object();
                json_object_set_new(e, "image_id", json_integer(ev.image_ids[i]));
                for (int m = 0; m < 6; m++) json_object_set_new(e, METHODS[m], json_real(method_value(&per[i], m)));
                json_array_append_new(list, e);
            }
            json_object_set_new(o, "evalImgs", list);
        }
        rc = print_json(o);
    } else {
        for (int m = 0; m < 6; m++) printf("%s: %0.3f\n", METHODS[m], method_value(&corpus, m));
        if (per_image) {
            printf("\n%-12s", "image_id");
            for (int m = 0; m < 6; m++) printf(" %8s", METHODS[m]);
            putchar('\n');
            for (size_t i = 0; i < ev.n; i++) {
                printf("%-12lld", ev.image_ids[i]);
                for (int m = 0; m < 6; m++) printf(" %8.3f", method_value(&per[i], m));
                putchar('\n');
            }
        }
    }
    free(per);
    gr_caption_eval_free(&ev);
    return rc;
}

static int run_vqa(int argc, char **argv)
{
    const char *q = NULL, *a = NULL, *r = NULL, *which = "official";
    int json = 0, per_question = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--questions") == 0) { if (!(q = opt_value(argc, argv, &i))) return 2; }
        else if (strcmp(argv[i], "--annotations") == 0) { if (!(a = opt_value(argc, argv, &i))) return 2; }
        else if (strcmp(argv[i], "--results") == 0) { if (!(r = opt_value(argc, argv, &i))) return 2; }
        else if (strcmp(argv[i], "--evaluator") == 0) { if (!(which = opt_value(argc, argv, &i))) return 2; }
        else if (strcmp(argv[i], "--json") == 0) json = 1;
        else if (strcmp(argv[i], "--per-question") == 0) per_question = 1;
        else { fprintf(stderr, "graft: score vqa: unknown argument '%s' (see graft score --help)\n", argv[i]); return 2; }
    }
    if (!q || !a || !r) {
        fprintf(stderr, "graft: score vqa: --questions, --annotations and --results are required (see graft score --help)\n");
        return 2;
    }
    gr_vqa_evaluator evk;
    if (strcmp(which, "official") == 0) evk = GR_VQA_OFFICIAL;
    else if (strcmp(which, "lavis") == 0) evk = GR_VQA_LAVIS;
    else { fprintf(stderr, "graft: score vqa: --evaluator must be 'official' or 'lavis', not '%s'\n", which); return 2; }

    gr_vqa_eval ev;
    if (gr_vqa_eval_load(q, a, r, &ev) != GR_OK) return gr_cli_error();
    gr_vqa_scores s;
    if (gr_vqa_score(ev.items, ev.n, evk, &s) != GR_OK) { gr_vqa_eval_free(&ev); return gr_cli_error(); }
    int rc = 0;
    if (json) {
        json_t *o = json_object(), *pq = json_object(), *pa = json_object();
        json_object_set_new(o, "overall", json_real(s.overall));
        for (size_t i = 0; i < s.n_question_types; i++)
            json_object_set_new(pq, s.question_types[i].name, json_real(s.question_types[i].percent));
        for (size_t i = 0; i < s.n_answer_types; i++)
            json_object_set_new(pa, s.answer_types[i].name, json_real(s.answer_types[i].percent));
        json_object_set_new(o, "perQuestionType", pq);
        json_object_set_new(o, "perAnswerType", pa);
        if (per_question) {
            json_t *qa = json_object();
            char key[32];
            for (size_t i = 0; i < s.n; i++) {
                snprintf(key, sizeof key, "%lld", ev.items[i].question_id);
                json_object_set_new(qa, key, json_real(gr_round_py(100 * s.per_question[i], 2)));
            }
            json_object_set_new(o, "evalQA", qa);
        }
        rc = print_json(o);
    } else {
        /* vqaEvalDemo.py's lines: "%.02f" of the values round(x, 2) gave */
        printf("Overall Accuracy is: %.02f\n", gr_round_py(s.overall, 2));
        printf("Per Question Type Accuracy is the following:\n");
        for (size_t i = 0; i < s.n_question_types; i++)
            printf("%s : %.02f\n", s.question_types[i].name, gr_round_py(s.question_types[i].percent, 2));
        printf("Per Answer Type Accuracy is the following:\n");
        for (size_t i = 0; i < s.n_answer_types; i++)
            printf("%s : %.02f\n", s.answer_types[i].name, gr_round_py(s.answer_types[i].percent, 2));
        if (per_question) {
            printf("Per Question Accuracy:\n");
            for (size_t i = 0; i < s.n; i++)
                printf("%lld : %.02f\n", ev.items[i].question_id, gr_round_py(100 * s.per_question[i], 2));
        }
    }
    gr_vqa_scores_free(&s);
    gr_vqa_eval_free(&ev);
    return rc;
}

static int run_score(int argc, char **argv)
{
    if (argc < 2) return gr_cli_usage(&gr_cmd_score, 2);
    if (strcmp(argv[1], "captions") == 0) return run_captions(argc - 1, argv + 1);
    if (strcmp(argv[1], "vqa") == 0) return run_vqa(argc - 1, argv + 1);
    fprintf(stderr, "graft: score: unknown kind '%s' (captions or vqa; see graft score --help)\n", argv[1]);
    return 2;
}

const gr_command gr_cmd_score = {
    "score",
    run_score,
    "caption (BLEU, ROUGE-L, CIDEr) and VQA scores of a prediction file, as the reference evaluators compute them",
    USAGE,
};

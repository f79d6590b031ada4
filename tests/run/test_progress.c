/* Progress display: plain periodic lines, the redrawn bar (rate-limited, never wider than the
 * terminal), quiet mode and messages. Time is injected, so nothing depends on the machine's speed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run/progress.h"

static int checks, failures;

static void check(int ok, const char *what)
{
    checks++;
    if (!ok) failures++;
    printf("%s: %s\n", ok ? "ok" : "FAIL", what);
}

static int count(const char *s, const char *sub)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, sub)); p += strlen(sub)) n++;
    return n;
}

static gr_step_record rec(int64_t step, double loss)
{
    gr_step_record r = {.step = step, .epoch = (double)step / 10, .stage = "main", .loss = loss, .lr = 3e-4,
                        .grad_norm = 1, .tokens_per_s = 15300, .examples_per_s = 120};
    return r;
}

static void step_at(gr_progress *p, gr_step_record r, double now) { gr_progress_step_at(p, &r, now); }

typedef struct { char *buf; size_t len; FILE *f; } capture;

static void cap_open(capture *c) { c->buf = NULL; c->len = 0; c->f = open_memstream(&c->buf, &c->len); }
static void cap_close(capture *c) { fclose(c->f); }

static void test_lines(void)
{
    capture c;
    cap_open(&c);
    gr_progress_opts o = {.mode = GR_PROGRESS_LINES, .out = c.f, .total_steps = 12, .every_steps = 5, .every_seconds = 1000};
    gr_progress *p = gr_progress_new(&o);
    for (int s = 1; s <= 12; s++) step_at(p, rec(s, s <= 5 ? 2.0 : 1.0), 10.0 + s);
    gr_progress_end_at(p, 30);
    cap_close(&c);
    printf("%s", c.buf);
    check(count(c.buf, "\n") == 3 && !strchr(c.buf, '\r') && !strchr(c.buf, '\033'), "lines at steps 5, 10, 12; no terminal codes");
    check(strstr(c.buf, "step  5/12  42% [main] | epoch 0.50 | loss 2.0000 | lr 3.00e-04 | 15.3k tok/s | ETA 7s\n") != NULL,
          "line: step/total, percent, stage, epoch, mean loss, lr, tokens/s, ETA");
    check(strstr(c.buf, "step 10/12  83% [main] | epoch 1.00 | loss 1.0000") != NULL, "loss is the mean since the last line");
    check(strstr(c.buf, "step 12/12 100%") && strstr(c.buf, "| 11s\n"), "last step shown with elapsed time");
    free(c.buf);

    /* time-based lines: every 2 s even though the step interval is large */
    cap_open(&c);
    o = (gr_progress_opts){.mode = GR_PROGRESS_LINES, .out = c.f, .every_steps = 1000, .every_seconds = 2};
    p = gr_progress_new(&o);
    for (int s = 1; s <= 10; s++) step_at(p, rec(s, 1), 0.5 * s);
    gr_progress_end_at(p, 5.5);
    cap_close(&c);
    printf("%s", c.buf);
    check(count(c.buf, "\n") == 3 && strstr(c.buf, "step 5 [main]") && strstr(c.buf, "step 9 [main]") && strstr(c.buf, "step 10 [main]"),
          "unknown total: a line every 2 s (steps 5, 9) and the final step");
    free(c.buf);
}

static void test_bar(void)
{
    capture c;
    cap_open(&c);
    gr_progress_opts o = {.mode = GR_PROGRESS_BAR, .out = c.f, .total_steps = 1000, .width = 130};
    gr_progress *p = gr_progress_new(&o);
    /* 1000 steps over 1 second: at most ~10 redraws, plus the first and the last */
    for (int s = 1; s <= 1000; s++) {
        step_at(p, rec(s, 1.5), 100 + s * 0.001);
        if (s == 500) gr_progress_print(p, "eval: CIDEr %.3f", 0.5);
    }
    gr_progress_end_at(p, 101.5);
    cap_close(&c);
    int redraws = count(c.buf, "\r");
    printf("%d redraws, %zu bytes\n", redraws, c.len);
    check(redraws >= 10 && redraws <= 16, "bar redrawn ~10 times a second, not per step");
    check(strstr(c.buf, "\r\033[Keval: CIDEr 0.500\n") != NULL, "message printed on its own cleared line");
    check(count(c.buf, "\n") == 2 && c.buf[c.len - 1] == '\n', "bar ends its line at the end");
    check(strstr(c.buf, "[####################] step 1000/1000 100%") != NULL, "full bar at the end");
    check(strstr(c.buf, "[##########..........] step  500/1000  50%") != NULL, "half bar after the message");
    int widest = 0;
    for (char *line = c.buf; *line;) {
        size_t n = strcspn(line, "\r\n");
        char *esc = strstr(line, "\033[K");
        if (esc && (size_t)(esc - line) < n) n = (size_t)(esc - line);
        if ((int)n > widest) widest = (int)n;
        line += strcspn(line, "\r\n");
        while (*line == '\r' || *line == '\n') line++;
        if (strncmp(line, "\033[K", 3) == 0) line += 3;
    }
    check(widest <= 129, "no drawn line wider than the terminal");
    free(c.buf);

    /* narrower terminals: the stage, then the bar and lr go before the line is cut */
    cap_open(&c);
    o.width = 115;
    o.out = c.f;
    p = gr_progress_new(&o);
    step_at(p, rec(7, 1.5), 1);
    step_at(p, rec(8, 1.5), 2);
    gr_progress_end_at(p, 3);
    cap_close(&c);
    printf("%s", c.buf);
    check(strstr(c.buf, "\r[....................] step    8/1000   1% | epoch 0.80 | loss 1.5000 | lr 3.00e-04 | 15.3k tok/s | ETA 16m32s\033[K\n") != NULL,
          "115 columns: the stage goes first");
    free(c.buf);
    cap_open(&c);
    o.width = 60;
    o.out = c.f;
    p = gr_progress_new(&o);
    step_at(p, rec(7, 1.5), 1);
    gr_progress_end_at(p, 2);
    cap_close(&c);
    printf("%s", c.buf);
    check(strncmp(c.buf, "\rstep    7/1000   1%", 20) == 0 && strlen(strtok(c.buf + 1, "\033")) <= 59, "60 columns: no bar, cut to width");
    free(c.buf);
}

static void test_quiet_and_format(void)
{
    capture c;
    cap_open(&c);
    gr_progress_opts o = {.mode = GR_PROGRESS_QUIET, .out = c.f, .total_steps = 10};
    gr_progress *p = gr_progress_new(&o);
    for (int s = 1; s <= 10; s++) step_at(p, rec(s, 1), s);
    gr_progress_print(p, "hidden");
    gr_progress_end_at(p, 11);
    cap_close(&c);
    check(c.len == 0, "quiet prints nothing");
    free(c.buf);

    cap_open(&c);
    o = (gr_progress_opts){.mode = GR_PROGRESS_AUTO, .out = c.f, .total_steps = 10};
    p = gr_progress_new(&o);
    step_at(p, rec(10, NAN), 1);
    gr_progress_end_at(p, 2);
    cap_close(&c);
    check(!strchr(c.buf, '\r') && strstr(c.buf, "loss nan"), "auto on a non-terminal: plain lines; NaN loss shown as nan");
    free(c.buf);

    char b[32];
    check(strcmp(gr_format_duration(42.4, b, sizeof b), "42s") == 0 && strcmp(gr_format_duration(187, b, sizeof b), "3m07s") == 0 &&
              strcmp(gr_format_duration(3720, b, sizeof b), "1h02m") == 0 && strcmp(gr_format_duration(90000, b, sizeof b), "1d01h") == 0 &&
              strcmp(gr_format_duration(NAN, b, sizeof b), "?") == 0,
          "durations");
    check(strcmp(gr_format_si(12, b, sizeof b), "12") == 0 && strcmp(gr_format_si(1.5, b, sizeof b), "1.50") == 0 &&
              strcmp(gr_format_si(15300, b, sizeof b), "15.3k") == 0 && strcmp(gr_format_si(999.7, b, sizeof b), "1.00k") == 0 &&
              strcmp(gr_format_si(2.5e12, b, sizeof b), "2.50T") == 0,
          "SI rates");
}

int main(void)
{
    test_lines();
    test_bar();
    test_quiet_and_format();
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures ? 1 : 0;
}

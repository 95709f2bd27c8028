/* src/train/run_plot.c: a stage's loss curve as a PNG, from its CSV log: axes with tick labels
 * (steps; loss on a log scale), every logged loss as a light dot and their moving average (an EMA
 * over about 20 steps, as ldmcl-train's terminal shows it) as a line, a title. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "draw.h"
#include "runner_internal.h"

enum { W = 720, H = 360, LEFT = 64, RIGHT = 16, TOP = 28, BOTTOM = 40 };

static const uint8_t BLACK[3] = {0, 0, 0}, GRAY[3] = {170, 170, 170}, LIGHT[3] = {200, 215, 240},
                     BLUE[3] = {30, 90, 200}, GRID[3] = {235, 235, 235};

/* A tick step of about range / 6 from 1, 2 or 5 times a power of ten. */
static double nice_step(double range) {
    double raw = range / 6.0, p = pow(10.0, floor(log10(raw)));
    double m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

ldm_status run_plot_losses(const char *path, const char *title, const float *losses, size_t n) {
    static const uint8_t white[3] = {255, 255, 255};
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (losses[i] > 0 && isfinite(losses[i])) {
            lo = fmin(lo, log10(losses[i]));
            hi = fmax(hi, log10(losses[i]));
        }
    if (!(hi >= lo)) lo = -1, hi = 0; /* nothing to plot: an empty frame */
    if (hi - lo < 0.3) lo -= 0.15, hi += 0.15;
    ldm_image img;
    LDM_TRY(ldm_draw_canvas(W, H, 3, white, &img));
    int pw = W - LEFT - RIGHT, ph = H - TOP - BOTTOM;
    double steps = n > 1 ? (double)(n - 1) : 1.0;
#define X_OF(i) (LEFT + (int)lround((double)(i) / steps * (pw - 1)))
#define Y_OF(v) (TOP + ph - 1 - (int)lround(((v)-lo) / (hi - lo) * (ph - 1)))
    char label[64];
    /* y ticks: 1, 2 and 5 times powers of ten inside the range (every one when they are few) */
    for (int e = (int)floor(lo); e <= (int)ceil(hi); e++)
        for (int m = 1; m <= 5; m += m == 1 ? 1 : 3) {
            double v = log10(m) + e;
            if (v < lo || v > hi) continue;
            int y = Y_OF(v);
            ldm_draw_line(&img, LEFT, y, LEFT + pw - 1, y, GRID);
            ldm_draw_line(&img, LEFT - 4, y, LEFT - 1, y, BLACK);
            snprintf(label, sizeof label, "%g", m * pow(10.0, e));
            ldm_draw_text(&img, LEFT - 8 - ldm_draw_text_width(label, 1), y - 3, 1, label, BLACK);
        }
    /* x ticks: steps 1 .. n */
    double dx = fmax(1.0, nice_step(n > 1 ? (double)n : 1.0)); /* whole steps */
    for (double s = dx; s <= (double)n; s += dx) {
        int x = X_OF(s - 1);
        ldm_draw_line(&img, x, TOP, x, TOP + ph - 1, GRID);
        ldm_draw_line(&img, x, TOP + ph, x, TOP + ph + 3, BLACK);
        snprintf(label, sizeof label, "%.0f", s);
        ldm_draw_text(&img, x - ldm_draw_text_width(label, 1) / 2, TOP + ph + 7, 1, label, BLACK);
    }
    ldm_draw_text(&img, LEFT + pw / 2 - ldm_draw_text_width("step", 1) / 2, H - 14, 1, "step",
                  BLACK);
    ldm_draw_line(&img, LEFT - 1, TOP, LEFT - 1, TOP + ph, BLACK); /* axes */
    ldm_draw_line(&img, LEFT - 1, TOP + ph, LEFT + pw - 1, TOP + ph, BLACK);
    /* the losses, then their moving average over them */
    double ema = NAN;
    int px = -1, py = -1;
    for (size_t i = 0; i < n; i++) {
        if (!(losses[i] > 0) || !isfinite(losses[i])) continue;
        ldm_draw_rect(&img, X_OF(i), Y_OF(log10(losses[i])), 2, 2, LIGHT);
    }
    for (size_t i = 0; i < n; i++) {
        if (!(losses[i] > 0) || !isfinite(losses[i])) continue;
        ema = isnan(ema) ? losses[i] : ema + (losses[i] - ema) / 20.0;
        int x = X_OF(i), y = Y_OF(log10(ema));
        if (px >= 0) ldm_draw_line(&img, px, py, x, y, BLUE);
        px = x, py = y;
    }
#undef X_OF
#undef Y_OF
    char head[256];
    snprintf(head, sizeof head, "%s: loss per step (dots) and its moving average, log scale",
             title);
    ldm_draw_text(&img, LEFT, 8, 1, head, BLACK);
    ldm_draw_text(&img, 6, TOP - 14, 1, "loss", GRAY);
    char range[192];
    snprintf(range, sizeof range, "%s loss per step, log scale from %.4g to %.4g over %zu steps",
             title, pow(10, lo), pow(10, hi), n);
    const char *text[] = {"Description", range, NULL};
    ldm_status st = ldm_png_write(path, &img, text);
    ldm_image_free(&img);
    return st;
}

ldm_status run_plot_log(const char *csv, const char *png, const char *title) {
    FILE *f = fopen(csv, "r");
    if (!f) return LDM_FAIL(LDM_ERR_NOT_FOUND, "cannot read '%s'", csv);
    size_t n = 0, cap = 1024;
    float *losses = malloc(cap * sizeof *losses);
    char line[512];
    while (losses && fgets(line, sizeof line, f)) {
        char *comma = strchr(line, ',');
        if (atoi(line) <= 0 || !comma) continue; /* the header */
        if (n == cap) {
            float *bigger = realloc(losses, 2 * cap * sizeof *losses);
            if (!bigger) break;
            losses = bigger;
            cap *= 2;
        }
        losses[n++] = strtof(comma + 1, NULL);
    }
    fclose(f);
    ldm_status st = losses ? run_plot_losses(png, title, losses, n)
                           : LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    free(losses);
    return st;
}

/* src/train/run_plot.c: the loss curve of a training run as a PNG. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/image.h"
#include "runner_internal.h"

ldm_status run_plot_losses(const char *path, const float *losses, size_t n) {
    enum { W = 640, H = 240, M = 20 };
    uint8_t *px = malloc((size_t)W * H * 3);
    if (!px) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    memset(px, 255, (size_t)W * H * 3);
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (losses[i] > 0 && isfinite(losses[i])) {
            lo = fmin(lo, log10(losses[i]));
            hi = fmax(hi, log10(losses[i]));
        }
    if (!(hi > lo)) hi = lo + 1;
    for (int x = M; x < W - M; x++) /* axes */
        memset(px + ((size_t)(H - M) * W + x) * 3, 0, 3);
    for (int y = M; y < H - M; y++)
        memset(px + ((size_t)y * W + M) * 3, 0, 3);
    for (size_t i = 0; i < n; i++) {
        if (!(losses[i] > 0) || !isfinite(losses[i])) continue;
        int x = M + (int)((double)i / (double)(n > 1 ? n - 1 : 1) * (W - 2 * M - 1));
        int y = (H - M - 1) - (int)((log10(losses[i]) - lo) / (hi - lo) * (H - 2 * M - 1));
        uint8_t *p = px + ((size_t)y * W + x) * 3;
        p[0] = 30, p[1] = 90, p[2] = 200;
    }
    char range[128];
    snprintf(range, sizeof range, "loss per step, log scale from %.4g to %.4g over %zu steps",
             pow(10, lo), pow(10, hi), n);
    const char *text[] = {"Description", range, NULL};
    ldm_image img = {W, H, 3, px};
    ldm_status st = ldm_png_write(path, &img, text);
    free(px);
    return st;
}

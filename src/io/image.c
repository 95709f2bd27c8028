/* src/io/image.c: reading an image by its format, and the dataset transform of the reference
 * (torchvision's Resize + CenterCrop + ToTensor, then 2x - 1) with PIL's resampling; back from
 * tensors to 8-bit images (see ldmcl/image.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "image_internal.h"
#include "ldmcl/image.h"

ldm_status ldm_image_open(const char *path, FILE **f) {
    const char *kind;
    int err = ldm_open_regular(path, f, &kind);
    if (err < 0)
        return LDM_FAIL(LDM_ERR_FORMAT, "the image '%s' is %s, not a regular file: not read", path,
                        kind);
    if (err > 0)
        return LDM_FAIL(LDM_ERR_NOT_FOUND, "cannot open the image '%s': %s", path, strerror(err));
    return LDM_OK;
}

ldm_status ldm_image_read(const char *path, int channels, const ldm_image_limits *limits,
                          ldm_image *out) {
    memset(out, 0, sizeof *out);
    FILE *f;
    LDM_TRY(ldm_image_open(path, &f));
    unsigned char head[8] = {0};
    size_t n = fread(head, 1, sizeof head, f);
    fclose(f);
    if (n >= 8 && !memcmp(head, "\x89PNG\r\n\x1a\n", 8))
        return ldm_png_read(path, channels, limits, out);
    if (n >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF)
        return ldm_jpeg_read(path, channels, limits, out);
    return LDM_FAIL(LDM_ERR_FORMAT, "'%s' is neither a PNG nor a JPEG file (%s)", path,
                    n == 0 ? "it is empty" : "unknown signature");
}

/* PIL's resampling along one axis (ImagingResample with the bilinear filter): output sample j
 * is a triangle-filtered mix of input samples around its centre, the filter widened by the
 * scale when shrinking (antialiasing). src has `count` samples of `stride` apart per line;
 * results are rounded to 8 bits, as PIL's intermediate and final images are. */
static void resample_line(const uint8_t *src, int in, int stride, uint8_t *dst, int out,
                          int dst_stride, double *weights) {
    double scale = (double)in / (double)out, filterscale = scale > 1.0 ? scale : 1.0;
    double support = filterscale; /* the bilinear filter's support is 1 */
    for (int j = 0; j < out; j++) {
        double center = (j + 0.5) * scale, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in) xmax = in;
        double total = 0;
        for (int i = xmin; i < xmax; i++) {
            double x = fabs((i - center + 0.5) * ss);
            weights[i - xmin] = x < 1.0 ? 1.0 - x : 0.0;
            total += weights[i - xmin];
        }
        double v = 0;
        for (int i = xmin; i < xmax; i++)
            v += weights[i - xmin] * src[(size_t)i * (size_t)stride];
        v = total > 0 ? v / total : 0;
        long r = lround(v);
        dst[(size_t)j * (size_t)dst_stride] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
    }
}

ldm_status ldm_image_to_tensor(const ldm_image *img, int size, int flip, float *out) {
    return ldm_image_to_tensor_hw(img, size, size, flip, out);
}

ldm_status ldm_image_to_tensor_hw(const ldm_image *img, int out_h, int out_w, int flip,
                                  float *out) {
    int w = img->width, h = img->height, c = img->channels;
    if (out_h < 1 || out_w < 1 || w < 1 || h < 1 || (c != 1 && c != 3))
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "resizing a %dx%d image of %d channels to %dx%d",
                        w, h, c, out_w, out_h);
    /* scaled to cover out_w x out_h (for a square, torchvision's Resize(size): the shorter side
     * to size, the longer int(size * long / short)) */
    int rw, rh;
    if ((long long)w * out_h <= (long long)h * out_w) {
        rw = out_w;
        rh = (int)((long long)out_w * h / w);
    } else {
        rh = out_h;
        rw = (int)((long long)out_h * w / h);
    }
    uint8_t *mid = malloc((size_t)h * (size_t)rw * (size_t)c);
    uint8_t *res = malloc((size_t)rh * (size_t)rw * (size_t)c);
    double *weights = malloc(((size_t)(w > h ? w : h) + 2) * sizeof *weights);
    if (!mid || !res || !weights) {
        free(mid);
        free(res);
        free(weights);
        return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory resizing an image");
    }
    for (int y = 0; y < h; y++) /* horizontal pass */
        for (int k = 0; k < c; k++)
            resample_line(img->pixels + ((size_t)y * w) * c + k, w, c,
                          mid + ((size_t)y * rw) * c + k, rw, c, weights);
    for (int x = 0; x < rw; x++) /* vertical pass */
        for (int k = 0; k < c; k++)
            resample_line(mid + (size_t)x * c + k, h, rw * c, res + (size_t)x * c + k, rh, rw * c,
                          weights);
    /* CenterCrop: torchvision rounds the offsets */
    int top = (int)lround((rh - out_h) / 2.0), left = (int)lround((rw - out_w) / 2.0);
    for (int k = 0; k < c; k++)
        for (int y = 0; y < out_h; y++)
            for (int x = 0; x < out_w; x++) {
                int sx = left + (flip ? out_w - 1 - x : x);
                uint8_t v = res[((size_t)(top + y) * rw + sx) * c + k];
                out[((size_t)k * out_h + y) * out_w + x] = (float)v / 127.5f - 1.0f;
            }
    free(mid);
    free(res);
    free(weights);
    return LDM_OK;
}

ldm_status ldm_image_from_tensor(const float *x, int channels, int height, int width,
                                 ldm_image *out) {
    memset(out, 0, sizeof *out);
    if ((channels != 1 && channels != 3) || height < 1 || width < 1)
        return LDM_FAIL(LDM_ERR_INVALID_ARGUMENT, "an image of %d channels, %dx%d", channels, width,
                        height);
    out->pixels = malloc((size_t)channels * height * width);
    if (!out->pixels) return LDM_FAIL(LDM_ERR_HOST_MEMORY, "out of host memory");
    out->width = width;
    out->height = height;
    out->channels = channels;
    for (int k = 0; k < channels; k++)
        for (int i = 0; i < height * width; i++) {
            float v = x[(size_t)k * height * width + i];
            v = v > 1.0f ? 1.0f : v >= -1.0f ? v : -1.0f; /* NaN to -1 */
            out->pixels[(size_t)i * channels + k] = (uint8_t)lrintf((v + 1.0f) * 127.5f);
        }
    return LDM_OK;
}

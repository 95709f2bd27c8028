/* tools/sample_output.c: ldmcl-sample's output names and folders, and A1111's "parameters" text
 * (see sample_output.h). */
#include "sample_output.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int output_name(const char *pattern, int i, char *out, size_t size) {
    const char *pct = strchr(pattern, '%');
    int n = -1;
    if (pct) {
        const char *q = pct + 1;
        int zero = *q == '0', width = 0;
        if (zero) q++;
        while (*q >= '0' && *q <= '9') {
            if (width <= OUTPUT_MAX) width = width * 10 + (*q - '0');
            q++;
        }
        if (*q == 'd') {
            if (width > OUTPUT_MAX) return -1;
            n = snprintf(out, size, zero ? "%.*s%0*d%s" : "%.*s%*d%s", (int)(pct - pattern),
                         pattern, width, i + 1, q + 1);
            return n < 0 || (size_t)n >= size ? -1 : n;
        }
    }
    const char *dot = strrchr(pattern, '.'), *slash = strrchr(pattern, '/');
    if (i == 0)
        n = snprintf(out, size, "%s", pattern);
    else if (dot && (!slash || dot > slash))
        n = snprintf(out, size, "%.*s_%d%s", (int)(dot - pattern), pattern, i + 1, dot);
    else
        n = snprintf(out, size, "%s_%d", pattern, i + 1);
    return n < 0 || (size_t)n >= size ? -1 : n;
}

/* The --save-x0 preview name of an image name (stem_x0-STEP.png) into out; its length, or -1
 * when it does not fit. */
int x0_name(const char *base, int step, char *out, size_t size) {
    const char *dot = strrchr(base, '.'), *slash = strrchr(base, '/');
    int stem = dot && (!slash || dot > slash) ? (int)(dot - base) : (int)strlen(base);
    int n = snprintf(out, size, "%.*s_x0-%d.png", stem, base, step);
    return n < 0 || (size_t)n >= size ? -1 : n;
}

int output_names_fit(const char *output, int images, int with_x0) {
    char name[OUTPUT_MAX], x0[OUTPUT_MAX];
    int len = output_name(output, images - 1, name, sizeof name);
    if (len >= 0 && with_x0) len = x0_name(name, INT_MAX, x0, sizeof x0);
    const char *file = len >= 0 ? strrchr(with_x0 ? x0 : name, '/') : NULL;
    file = file ? file + 1 : (with_x0 ? x0 : name);
    if (len < 0 || strlen(file) > NAME_MAX) {
        fprintf(stderr,
                "ldmcl-sample: -o %s: the names it makes for %d image%s%s are too long (a file "
                "name takes at most %d characters, a path %d); use a shorter name or counter "
                "width (like img-%%04d.png)\n",
                output, images, images == 1 ? "" : "s", with_x0 ? " and their x0 previews" : "",
                NAME_MAX, OUTPUT_MAX - 1);
        return -1;
    }
    return 0;
}

/* Creates the folders above `path` (like mkdir -p on its dirname), so -o runs/today/x.png works.
 * Returns 0, or 1 after naming the folder that could not be made. */
int make_parent_dirs(const char *path) {
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) {
        fprintf(stderr, "ldmcl-sample: output path too long: '%s'\n", path);
        return 1;
    }
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return 0;
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        int end = *p == '\0';
        if (*p != '/' && !end) continue;
        *p = '\0';
        if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "ldmcl-sample: cannot create the output folder '%s': %s\n", dir,
                    strerror(errno));
            return 1;
        }
        if (end) return 0;
        *p = '/';
    }
}

ldm_status write_png_scaled(const char *path, const float *x, int channels, int h, int w, int scale,
                            const char *const *text) {
    ldm_image img = {0}, big = {0};
    ldm_status st = ldm_image_from_tensor(x, channels, h, w, &img);
    if (st != LDM_OK) return st;
    const ldm_image *out = &img;
    if (scale > 1) {
        size_t W = (size_t)w * scale, H = (size_t)h * scale;
        big = (ldm_image){(int)W, (int)H, channels, malloc(W * H * channels)};
        if (!big.pixels) {
            ldm_image_free(&img);
            return LDM_ERR_HOST_MEMORY;
        }
        for (size_t y = 0; y < H; y++)
            for (size_t i = 0; i < W; i++)
                memcpy(big.pixels + (y * W + i) * channels,
                       img.pixels + ((y / scale) * w + i / scale) * channels, (size_t)channels);
        out = &big;
    }
    st = ldm_png_write(path, out, text);
    ldm_image_free(&img);
    if (big.pixels) ldm_image_free(&big);
    return st;
}

const char *a1111_sampler_name(ldm_sampler_method m) {
    switch (m) {
    case LDM_SAMPLER_DDPM:
        return "DDPM";
    case LDM_SAMPLER_DDIM:
        return "DDIM";
    case LDM_SAMPLER_EULER:
        return "Euler";
    case LDM_SAMPLER_EULER_A:
        return "Euler a";
    case LDM_SAMPLER_HEUN:
        return "Heun";
    case LDM_SAMPLER_DPM2:
        return "DPM2";
    case LDM_SAMPLER_DPMPP_2S_A:
        return "DPM++ 2S a";
    case LDM_SAMPLER_DPMPP_2M:
        return "DPM++ 2M";
    case LDM_SAMPLER_LCM:
        return "LCM";
    default:
        return ldm_sampler_method_name(m);
    }
}

const char *a1111_schedule_name(ldm_sigma_schedule s) {
    static const char *const names[LDM_SIGMAS_COUNT] = {
        [LDM_SIGMAS_DISCRETE] = "Uniform",        [LDM_SIGMAS_KARRAS] = "Karras",
        [LDM_SIGMAS_EXPONENTIAL] = "Exponential", [LDM_SIGMAS_AYS] = "Align Your Steps",
        [LDM_SIGMAS_SGM_UNIFORM] = "SGM Uniform", [LDM_SIGMAS_SIMPLE] = "Simple"};
    return (int)s >= 0 && s < LDM_SIGMAS_COUNT ? names[s] : "Uniform";
}

/* Appends to out (at *used, size bytes in all) without overflowing. */
static void put(char *out, size_t size, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put(char *out, size_t size, size_t *used, const char *fmt, ...) {
    if (*used >= size) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *used, size - *used, fmt, ap);
    va_end(ap);
    if (n > 0) *used = *used + (size_t)n < size ? *used + (size_t)n : size - 1;
}

/* The UTF-8 sequence at s as a code point; *len its bytes (1 for a stray byte, returned as-is). */
static unsigned utf8_next(const unsigned char *s, int *len) {
    int n = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC0 ? 2 : 1;
    unsigned c = n == 1 ? s[0] : s[0] & (0x3F >> (n - 1));
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *len = 1;
            return s[0];
        }
        c = c << 6 | (s[i] & 0x3F);
    }
    *len = n;
    return c;
}

/* A value as A1111's quote(): as is, unless it holds ',', ':' or a newline; then as Python's
 * json.dumps writes it (ASCII only; other characters as backslash-u and four hex digits). */
static void put_value(char *out, size_t size, size_t *used, const char *v) {
    if (!strpbrk(v, ",:\n")) {
        put(out, size, used, "%s", v);
        return;
    }
    put(out, size, used, "\"");
    for (const unsigned char *s = (const unsigned char *)v; *s;) {
        int len;
        unsigned c = utf8_next(s, &len);
        s += len;
        if (c == '"' || c == '\\')
            put(out, size, used, "\\%c", (char)c);
        else if (c == '\n')
            put(out, size, used, "\\n");
        else if (c == '\r')
            put(out, size, used, "\\r");
        else if (c == '\t')
            put(out, size, used, "\\t");
        else if (c < 0x20 || (c >= 0x7F && c < 0x10000))
            put(out, size, used, "\\u%04x", c);
        else if (c >= 0x10000)
            put(out, size, used, "\\u%04x\\u%04x", 0xD800 + ((c - 0x10000) >> 10),
                0xDC00 + ((c - 0x10000) & 0x3FF));
        else
            put(out, size, used, "%c", (char)c);
    }
    put(out, size, used, "\"");
}

void a1111_parameters(const a1111_params *p, char *out, size_t size) {
    size_t used = 0;
    out[0] = '\0';
    put(out, size, &used, "%s\nNegative prompt: %s\nSteps: %d, Sampler: %s", p->prompt, p->negative,
        p->steps, a1111_sampler_name(p->method));
    if (p->method != LDM_SAMPLER_DDPM && p->method != LDM_SAMPLER_DDIM &&
        p->method != LDM_SAMPLER_DDIM_TRAILING && p->method != LDM_SAMPLER_TCD)
        put(out, size, &used, ", Schedule type: %s", a1111_schedule_name(p->scheduler));
    put(out, size, &used, ", CFG scale: %g, Seed: %" PRIu64 ", Size: %dx%d", (double)p->cfg_scale,
        p->seed, p->width, p->height);
    if (p->model_hash) put(out, size, &used, ", Model hash: %s", p->model_hash);
    /* the model's name: its folder's, without the path */
    char name[OUTPUT_MAX];
    snprintf(name, sizeof name, "%s", p->model_dir);
    size_t n = strlen(name);
    while (n > 1 && name[n - 1] == '/')
        name[--n] = '\0';
    if (n > 12 && !strcmp(name + n - 12, ".safetensors")) name[n - 12] = '\0';
    const char *base = strrchr(name, '/');
    put(out, size, &used, ", Model: ");
    put_value(out, size, &used, base && base[1] ? base + 1 : name);
    if (p->strength > 0) put(out, size, &used, ", Denoising strength: %g", (double)p->strength);
    if (p->clip_skip > 1) put(out, size, &used, ", Clip skip: %d", p->clip_skip);
    if (p->eta > 0 && (p->method == LDM_SAMPLER_DDIM || p->method == LDM_SAMPLER_DDIM_TRAILING ||
                       p->method == LDM_SAMPLER_TCD))
        put(out, size, &used, ", Eta: %g", (double)p->eta);
    if (p->batch_size > 1)
        put(out, size, &used, ", Batch size: %d, Batch pos: %d", p->batch_size, p->batch_pos);
    put(out, size, &used, ", Version: ldmcl %s", LDMCL_VERSION);
}

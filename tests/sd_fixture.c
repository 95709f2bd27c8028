/* tests/sd_fixture.c: Stable Diffusion test models made from the tiny ones (see sd_fixture.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sd_fixture.h"
#include "test_util.h"

static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && !strcmp(s + n - m, tail);
}

void sd_fixture_rewrite(const char *src, const char *dst, const char *drop, const char *reshape,
                        int vocab) {
    char path[4096];
    snprintf(path, sizeof path, "%s/sd/%s", LDMCL_TEST_REF_DIR, src);
    ldm_safetensors *st;
    assert_status(ldm_safetensors_open(path, &st), LDM_OK);
    size_t n = ldm_safetensors_count(st), k = 0;
    ldm_st_entry *e = calloc(n, sizeof *e);
    int64_t(*shapes)[LDM_ST_MAX_DIMS] = calloc(n, sizeof *shapes);
    float **data = calloc(n, sizeof *data);
    assert_true(e && shapes && data);
    for (size_t i = 0; i < n; i++) {
        const ldm_st_tensor *t = ldm_safetensors_at(st, i);
        if (drop && !strncmp(t->name, drop, strlen(drop))) continue;
        int grow = vocab > 0 && t->ndim == 2 && ends_with(t->name, "token_embedding.weight");
        size_t rows = grow ? (size_t)vocab : (size_t)t->shape[0];
        size_t cols = (size_t)(t->numel / (uint64_t)(t->shape[0] ? t->shape[0] : 1));
        data[k] = malloc((grow ? rows * cols : t->numel) * sizeof(float) + sizeof(float));
        assert_non_null(data[k]);
        assert_status(ldm_safetensors_read_f32(st, t, data[k]), LDM_OK);
        e[k].ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++)
            shapes[k][d] = t->shape[d];
        if (grow) {
            uint32_t x = 2463534242u;
            for (size_t r = (size_t)t->shape[0]; r < rows; r++)
                for (size_t c = 0; c < cols; c++) {
                    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
                    data[k][r * cols + c] = (float)(x % 2001u) / 1000.0f - 1.0f;
                }
            shapes[k][0] = (int64_t)rows;
        }
        if (reshape && !strcmp(t->name, reshape)) {
            e[k].ndim = 2;
            shapes[k][0] = (int64_t)t->numel;
            shapes[k][1] = 1;
        }
        e[k].name = t->name;
        e[k].shape = shapes[k];
        e[k].data = data[k];
        k++;
    }
    const char *meta[] = {"ldmcl.sd_config", ldm_safetensors_metadata(st, "ldmcl.sd_config"), NULL};
    assert_status(ldm_safetensors_write(dst, e, k, meta[1] ? meta : NULL), LDM_OK);
    for (size_t i = 0; i < k; i++)
        free(data[i]);
    free(data);
    free(shapes);
    free(e);
    ldm_safetensors_close(st);
}

void sd_fixture_model_path(const char *fam, const char *layout, char *path, size_t size) {
    snprintf(path, size, "%s/sd/%s_%s%s", LDMCL_TEST_REF_DIR, fam, layout,
             strcmp(layout, "single") ? "" : ".safetensors");
}

ldm_tensor *sd_fixture_record_unet(ldm_graph *g, const ldm_sd_model *m, ldm_tensor **in) {
    return ldm_sd_unet(g, &m->unet, in[0], in[1], in[2]);
}

ldm_tensor *sd_fixture_record_text(ldm_graph *g, const ldm_sd_model *m, ldm_tensor **in) {
    return ldm_clip_text(g, &m->text, in[0], NULL, m->text_skip);
}

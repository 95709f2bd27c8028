/* tests/test_clip.c: the CLIP text encoder against transformers' CLIPTextModel
 * (tests/ref/clip_text.safetensors; tiny random configurations, quick_gelu and gelu, with and
 * without padding): the last hidden state and the "clip skip" output within 1e-4 norm-wise, and
 * the gradient of every parameter of an MSE loss (1e-4 norm-wise, or twice PyTorch's float32
 * error). The config is read from a config.json as Hugging Face writes it. Also the real-size
 * parameter count and the config's error messages. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "ldmcl/checkpoint.h"
#include "ldmcl/clip.h"
#include "ldmcl/safetensors.h"
#include "op_harness.h"

static ldm_safetensors *g_st;

static double meta_number(const ldm_json *m, const char *key) {
    const ldm_json *v = ldm_json_get(m, key);
    if (!v || v->type != LDM_JSON_NUMBER) fail_msg("metadata key '%s' missing", key);
    return v->number;
}

static double bar(const ldm_json *m, const char *key) {
    return fmax(OP_REL_TOL, 2.0 * meta_number(m, key));
}

/* Writes the case's config as a CLIPModel config.json (under "text_config") and reads it. */
static void read_config(const ldm_json *meta, const char *dir, ldm_clip_text_config *c) {
    const ldm_json *cfg = ldm_json_get(meta, "config");
    char path[4200], text[1024];
    const ldm_json *act = ldm_json_get(cfg, "hidden_act");
    snprintf(text, sizeof text,
             "{\"architectures\": [\"CLIPModel\"], \"projection_dim\": 512,\n \"text_config\": "
             "{\"vocab_size\": %d, \"hidden_size\": %d, \"intermediate_size\": %d, "
             "\"num_hidden_layers\": %d, \"num_attention_heads\": %d, "
             "\"max_position_embeddings\": %d, \"hidden_act\": \"%s\", \"layer_norm_eps\": %g, "
             "\"bos_token_id\": 0, \"dropout\": 0.0},\n \"vision_config\": {\"hidden_size\": 768}}",
             (int)meta_number(cfg, "vocab_size"), (int)meta_number(cfg, "hidden_size"),
             (int)meta_number(cfg, "intermediate_size"), (int)meta_number(cfg, "num_hidden_layers"),
             (int)meta_number(cfg, "num_attention_heads"),
             (int)meta_number(cfg, "max_position_embeddings"), act->string,
             meta_number(cfg, "layer_norm_eps"));
    snprintf(path, sizeof path, "%s/config.json", dir);
    test_write_file(path, text, strlen(text));
    assert_status(ldm_clip_text_config_read(path, c), LDM_OK);
    assert_int_equal(c->hidden_size, (int)meta_number(cfg, "hidden_size"));
    assert_int_equal(c->num_layers, (int)meta_number(cfg, "num_hidden_layers"));
    assert_int_equal(c->act, strcmp(act->string, "gelu") ? LDM_CLIP_QUICK_GELU : LDM_CLIP_GELU);
    assert_true(c->layer_norm_eps == (float)meta_number(cfg, "layer_norm_eps"));
}

static void check_norm(const char *what, ldm_tensor *t, const char *key, double tol,
                       double *worst) {
    size_t n = ldm_tensor_numel(t);
    float *got = malloc(n * sizeof *got), *want = test_st_load(g_st, key, NULL, NULL);
    assert_non_null(got);
    assert_status(ldm_tensor_read(t, got), LDM_OK);
    double e = test_norm_err(got, want, n);
    if (e > tol) fail_msg("%s off by %.3g (norm-wise)", what, e);
    *worst = fmax(*worst, e);
    free(got);
    free(want);
}

static void run_case(const char *name) {
    const char *text = ldm_safetensors_metadata(g_st, name);
    assert_non_null(text);
    char err[128], key[256];
    ldm_json *meta = ldm_json_parse(text, strlen(text), err, sizeof err);
    assert_non_null(meta);
    char *dir = test_make_tmpdir("clip");
    ldm_clip_text_config c;
    read_config(meta, dir, &c);
    int padded = (int)meta_number(meta, "padded");
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    int ndim, shape[4];
    snprintf(key, sizeof key, "%s.in.ids", name);
    float *ids_data = test_st_load(g_st, key, &ndim, shape);
    ldm_tensor *ids = ldm_graph_input(g, "ids", 2, shape);
    ldm_tensor *mask = padded ? ldm_graph_input(g, "mask", 2, shape) : NULL;
    ldm_tensor *target = ldm_graph_input(g, "target", LDM_SHAPE(shape[0], shape[1], c.hidden_size));
    ldm_tensor *out = ldm_clip_text(g, &c, ids, mask, 0);
    ldm_tensor *skip1 = ldm_clip_text(g, &c, ids, mask, 1);
    ldm_tensor_keep(out);
    ldm_tensor_keep(skip1);
    assert_status(ldm_graph_backward(g, ldm_mse_loss(g, out, target)), LDM_OK);
    assert_status(ldm_graph_compile(g), LDM_OK);
    assert_status(ldm_tensor_write(ids, ids_data), LDM_OK);
    free(ids_data);
    if (mask) {
        snprintf(key, sizeof key, "%s.in.mask", name);
        float *m = test_st_load(g_st, key, NULL, NULL);
        assert_status(ldm_tensor_write(mask, m), LDM_OK);
        free(m);
    }
    snprintf(key, sizeof key, "%s.target", name);
    float *t = test_st_load(g_st, key, NULL, NULL);
    assert_status(ldm_tensor_write(target, t), LDM_OK);
    free(t);
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        snprintf(key, sizeof key, "%s.param.%s", name, ldm_tensor_name(p));
        float *v = test_st_load(g_st, key, NULL, NULL);
        assert_status(ldm_tensor_write(p, v), LDM_OK);
        free(v);
    }
    assert_status(ldm_graph_zero_grads(g), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);
    double out_err = 0, grad_err = 0;
    snprintf(key, sizeof key, "%s.out", name);
    check_norm("last hidden state", out, key, bar(meta, "torch_fp32_out_norm_err"), &out_err);
    snprintf(key, sizeof key, "%s.out_skip1", name);
    check_norm("clip skip 1", skip1, key, bar(meta, "torch_fp32_out_norm_err"), &out_err);
    /* The key projection's bias gets no gradient in exact arithmetic (softmax ignores a shift
     * of all scores): such gradients are held to 1e-4 of the largest gradient's norm, absolutely;
     * the others norm-wise. */
    double top = 0;
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        snprintf(key, sizeof key, "%s.grad.%s", name, ldm_tensor_name(p));
        size_t n = ldm_tensor_numel(p);
        float *want = test_st_load(g_st, key, NULL, NULL);
        double norm = 0;
        for (size_t k = 0; k < n; k++)
            norm += (double)want[k] * want[k];
        top = fmax(top, sqrt(norm));
        free(want);
    }
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        snprintf(key, sizeof key, "%s.grad.%s", name, ldm_tensor_name(p));
        size_t n = ldm_tensor_numel(p);
        float *want = test_st_load(g_st, key, NULL, NULL);
        float *got = malloc(n * sizeof *got);
        assert_non_null(got);
        assert_status(ldm_tensor_read(ldm_tensor_grad(p), got), LDM_OK);
        double dn = 0, wn = 0;
        for (size_t k = 0; k < n; k++) {
            dn += ((double)got[k] - want[k]) * ((double)got[k] - want[k]);
            wn += (double)want[k] * want[k];
        }
        int zero = sqrt(wn) <= 1e-6 * top;
        double e = zero ? sqrt(dn) / top : sqrt(dn / wn);
        if (e > (zero ? OP_REL_TOL : bar(meta, "torch_fp32_grad_norm_err")))
            fail_msg("gradient of %s off by %.3g%s", ldm_tensor_name(p), e,
                     zero ? " of the largest gradient's norm" : " (norm-wise)");
        grad_err = fmax(grad_err, e);
        free(got);
        free(want);
    }
    printf("  %-18s hidden states %.2e, gradients %.2e norm-wise (PyTorch float32: %.2e, %.2e)\n",
           name, out_err, grad_err, meta_number(meta, "torch_fp32_out_norm_err"),
           meta_number(meta, "torch_fp32_grad_norm_err"));
    ldm_graph_destroy(g);
    ldm_ctx_destroy(ctx);
    ldm_json_free(meta);
    test_rmtree(dir);
    free(dir);
}

static void text_model_matches_transformers(void **state) {
    (void)state;
    const char *cases[] = {"clip_quick_full", "clip_quick_padded", "clip_gelu_full",
                           "clip_gelu_padded"};
    for (int i = 0; i < 4; i++)
        run_case(cases[i]);
}

/* Writes the case's text_model.* parameters as a CLIPModel's model.safetensors would hold them,
 * with a vision tower, projections and the position_ids buffer beside them; `broken` gives one
 * tensor a wrong shape. */
static void write_clip_model_file(const char *name, const char *path, int broken) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s.param.", name);
    size_t plen = strlen(prefix), n = 0;
    ldm_st_entry e[64];
    float *data[64];
    int64_t shapes[64][4];
    static float extra[64];
    for (size_t i = 0; i < ldm_safetensors_count(g_st); i++) {
        const ldm_st_tensor *t = ldm_safetensors_at(g_st, i);
        if (strncmp(t->name, prefix, plen) != 0) continue;
        assert_true(n < 60);
        data[n] = test_st_load(g_st, t->name, NULL, NULL);
        for (int d = 0; d < t->ndim; d++)
            shapes[n][d] = t->shape[d];
        int nd = t->ndim;
        if (broken && strstr(t->name, "final_layer_norm.bias")) nd = 1, shapes[n][0] -= 1;
        e[n] = (ldm_st_entry){t->name + plen, nd, shapes[n], data[n]};
        n++;
    }
    int64_t s_vis[4] = {4, 3, 2, 2}, s_one[1] = {1}, s_proj[2] = {2, 16}, s_pos[2] = {1, 12};
    e[n++] = (ldm_st_entry){"vision_model.embeddings.patch_embedding.weight", 4, s_vis, extra};
    e[n++] = (ldm_st_entry){"logit_scale", 1, s_one, extra};
    e[n++] = (ldm_st_entry){"text_projection.weight", 2, s_proj, extra};
    e[n++] = (ldm_st_entry){"text_model.embeddings.position_ids", 2, s_pos, extra};
    assert_status(ldm_safetensors_write(path, e, n, NULL), LDM_OK);
    for (size_t i = 0; i < n - 4; i++)
        free(data[i]);
}

/* The frozen encoder loads a whole CLIPModel file (only its text tower) and computes the last
 * hidden state of transformers' CLIPTextModel; a tensor of the wrong shape is named. */
static void clip_model_file_loads_into_the_frozen_encoder(void **state) {
    (void)state;
    const char *name = "clip_quick_padded";
    const char *text = ldm_safetensors_metadata(g_st, name);
    char err[128], key[128];
    ldm_json *meta = ldm_json_parse(text, strlen(text), err, sizeof err);
    assert_non_null(meta);
    char *dir = test_make_tmpdir("clip");
    ldm_clip_text_config c;
    read_config(meta, dir, &c);
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_clip_model_file(name, path, 0);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_clip_encoder *e;
    int shape[4], ndim;
    snprintf(key, sizeof key, "%s.in.ids", name);
    float *fids = test_st_load(g_st, key, &ndim, shape);
    snprintf(key, sizeof key, "%s.in.mask", name);
    float *fmask = test_st_load(g_st, key, NULL, NULL);
    int n = shape[0] * shape[1];
    int32_t *ids = malloc((size_t)n * sizeof *ids), *mask = malloc((size_t)n * sizeof *mask);
    float *out = malloc((size_t)n * (size_t)c.hidden_size * sizeof *out);
    assert_true(ids && mask && out);
    for (int i = 0; i < n; i++)
        ids[i] = (int32_t)fids[i], mask[i] = (int32_t)fmask[i];
    assert_status(ldm_clip_encoder_create(ctx, &c, shape[0], shape[1], 0, &e), LDM_OK);
    assert_status(ldm_clip_encoder_load(e, path), LDM_OK);
    assert_status(ldm_clip_encoder_run(e, ids, mask, out), LDM_OK);
    snprintf(key, sizeof key, "%s.out", name);
    float *want = test_st_load(g_st, key, NULL, NULL);
    double err_norm = test_norm_err(out, want, (size_t)n * (size_t)c.hidden_size);
    printf("  frozen encoder from a CLIPModel file: %.2e norm-wise\n", err_norm);
    assert_true(err_norm <= bar(meta, "torch_fp32_out_norm_err"));
    ids[3] = c.vocab_size;
    assert_status(ldm_clip_encoder_run(e, ids, mask, out), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(),
                    "token id 100 at row 0, position 3 is outside the vocabulary");
    write_clip_model_file(name, path, 1);
    assert_status(ldm_clip_encoder_load(e, path), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "text_model.final_layer_norm.bias (file [15], model [16])");
    ldm_clip_encoder_destroy(e);
    ldm_ctx_destroy(ctx);
    free(fids);
    free(fmask);
    free(ids);
    free(mask);
    free(out);
    free(want);
    ldm_json_free(meta);
    test_rmtree(dir);
    free(dir);
}

static void real_size_parameter_count(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_clip_text_config c;
    ldm_clip_text_config_default(&c);
    size_t n = 0;
    assert_status(ldm_clip_text_param_count(ctx, &c, &n), LDM_OK);
    assert_int_equal(n, 63165952);
    ldm_ctx_destroy(ctx);
}

static void expect_config_error(const char *dir, const char *json, ldm_status want,
                                const char *message) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    test_write_file(path, json, strlen(json));
    ldm_clip_text_config c;
    assert_status(ldm_clip_text_config_read(path, &c), want);
    assert_contains(ldm_last_error(), path);
    assert_contains(ldm_last_error(), message);
    assert_null(strstr(ldm_last_error(), ": : ")); /* one separator after the file's prefix */
}

static void bad_configs_name_file_and_key(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("clip");
    expect_config_error(dir, "{\"hidden_act\": \"relu\"}", LDM_ERR_FORMAT,
                        "\"hidden_act\" is \"relu\"; ldmcl supports \"quick_gelu\" and \"gelu\"");
    expect_config_error(dir, "{\"text_config\": {\"hidden_size\": \"512\"}}", LDM_ERR_FORMAT,
                        "\"hidden_size\" must be a positive integer");
    expect_config_error(dir, "{\"hidden_size\": 100, \"num_attention_heads\": 8}",
                        LDM_ERR_INVALID_ARGUMENT,
                        "hidden_size = 100 is not divisible by num_attention_heads = 8");
    expect_config_error(dir, "{\"vocab_size\": 10,}", LDM_ERR_FORMAT, "not valid JSON");
    ldm_clip_text_config c;
    assert_status(ldm_clip_text_config_read("/no/such/config.json", &c), LDM_ERR_NOT_FOUND);
    assert_contains(ldm_last_error(), "/no/such/config.json");
    /* An empty object is CLIPTextConfig's defaults. */
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    test_write_file(path, "{}", 2);
    assert_status(ldm_clip_text_config_read(path, &c), LDM_OK);
    assert_int_equal(c.vocab_size, 49408);
    assert_int_equal(c.num_layers, 12);
    test_rmtree(dir);
    free(dir);
}

static int open_refs(void **state) {
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/clip_text.safetensors", LDMCL_TEST_REF_DIR);
    return ldm_safetensors_open(path, &g_st) == LDM_OK ? 0 : -1;
}

static int close_refs(void **state) {
    (void)state;
    ldm_safetensors_close(g_st);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(text_model_matches_transformers),
        cmocka_unit_test(clip_model_file_loads_into_the_frozen_encoder),
        cmocka_unit_test(real_size_parameter_count),
        cmocka_unit_test(bad_configs_name_file_and_key),
    };
    return cmocka_run_group_tests(tests, open_refs, close_refs);
}

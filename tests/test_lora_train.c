/* tests/test_lora_train.c: LoRA adapters for training (ldmcl/lora_adapter.h) on the tiny SD 1.x
 * UNet (all_linear+conv) and text encoder (attn+ff) of tests/ref/sd/: output, loss and every
 * adapter's gradient against peft's (tools/refgen/make_lora_refs.py), the adapters written by
 * ldm_sd_lora_save tensor for tensor as the reference generator wrote them in kohya's format,
 * and the kinds of weights each target names. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/lora.h"
#include "ldmcl/lora_adapter.h"
#include "ldmcl/safetensors.h"
#include "sd_fixture.h"
#include "test_util.h"

/* One model with LoRA adapters for training: records it (rec) with the configuration, the loss
 * against the reference's target, the base weights frozen and loaded (load skips the adapters),
 * the adapters written from the reference; then output, loss and every adapter's gradient
 * against peft's. */
typedef ldm_tensor *(*lora_record)(ldm_graph *g, const ldm_sd_model *m, ldm_tensor **in);
typedef ldm_status (*lora_load)(const ldm_sd_model *m, ldm_graph *g);

static ldm_graph *check_training(ldm_ctx *ctx, ldm_safetensors *ref, const ldm_sd_model *m,
                                 const char *kind, const char *const *in_keys, int n_in,
                                 const char *targets, lora_record rec, lora_load load) {
    ldm_lora_config lc = {.rank = atoi(ldm_safetensors_metadata(ref, "rank")),
                          .alpha = (float)atof(ldm_safetensors_metadata(ref, "alpha"))};
    assert_status(ldm_lora_targets_parse(targets, &lc.targets), LDM_OK);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_graph_set_lora(g, &lc);
    assert_non_null(ldm_graph_lora(g));
    ldm_tensor *in[3];
    char key[400];
    int ndim, shape[LDM_MAX_DIMS];
    for (int i = 0; i < n_in; i++) {
        snprintf(key, sizeof key, "%s.%s", kind, in_keys[i]);
        free(test_st_load(ref, key, &ndim, shape));
        in[i] = ldm_graph_input(g, in_keys[i], ndim, shape);
    }
    snprintf(key, sizeof key, "%s.target", kind);
    free(test_st_load(ref, key, &ndim, shape));
    ldm_tensor *target = ldm_graph_input(g, "target", ndim, shape);
    ldm_tensor *out = rec(g, m, in);
    ldm_tensor *loss = ldm_mse_loss(g, out, target);
    ldm_tensor_keep(out);
    ldm_tensor_keep(loss);
    int adapters = 0;
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        int is_adapter = ldm_lora_is_adapter(ldm_tensor_name(p));
        ldm_tensor_set_trainable(p, is_adapter);
        adapters += is_adapter;
    }
    assert_status(ldm_graph_backward(g, loss), LDM_OK);
    assert_status(ldm_graph_compile(g), LDM_OK);
    assert_status(load(m, g), LDM_OK);
    /* as many adapters as peft made, each written from the reference */
    int want_adapters = 0;
    snprintf(key, sizeof key, "%s.adapter.", kind);
    for (size_t i = 0; i < ldm_safetensors_count(ref); i++)
        want_adapters += !strncmp(ldm_safetensors_at(ref, i)->name, key, strlen(key));
    assert_int_equal(adapters, want_adapters);
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        if (!ldm_lora_is_adapter(ldm_tensor_name(p))) continue;
        snprintf(key, sizeof key, "%s.adapter.%s", kind, ldm_tensor_name(p));
        if (!ldm_safetensors_find(ref, key)) fail_msg("peft made no adapter '%s'", key);
        float *v = test_st_load(ref, key, NULL, NULL);
        assert_status(ldm_tensor_write(p, v), LDM_OK);
        free(v);
    }
    for (int i = 0; i < n_in; i++) {
        snprintf(key, sizeof key, "%s.%s", kind, in_keys[i]);
        float *v = test_st_load(ref, key, NULL, NULL);
        assert_status(ldm_tensor_write(in[i], v), LDM_OK);
        free(v);
    }
    snprintf(key, sizeof key, "%s.target", kind);
    float *tv = test_st_load(ref, key, NULL, NULL);
    assert_status(ldm_tensor_write(target, tv), LDM_OK);
    free(tv);
    assert_status(ldm_graph_zero_grads(g), LDM_OK);
    assert_status(ldm_graph_run(g), LDM_OK);
    size_t n = ldm_tensor_numel(out);
    float *got = malloc(n * sizeof *got), got_loss;
    assert_non_null(got);
    assert_status(ldm_tensor_read(out, got), LDM_OK);
    assert_status(ldm_tensor_read(loss, &got_loss), LDM_OK);
    snprintf(key, sizeof key, "%s.out", kind);
    float *want = test_st_load(ref, key, NULL, NULL);
    double out_err = test_norm_err(got, want, n);
    free(got);
    free(want);
    snprintf(key, sizeof key, "%s.loss", kind);
    float *want_loss = test_st_load(ref, key, NULL, NULL);
    double loss_err = fabs(got_loss - want_loss[0]) / fabs(want_loss[0]);
    free(want_loss);
    /* the bar: 1e-4 norm-wise, or twice PyTorch float32's own error (as test_models') */
    snprintf(key, sizeof key, "%s_torch_fp32_grad_norm_err", kind);
    const char *fp32 = ldm_safetensors_metadata(ref, key);
    double grad_err = 0, bar = fmax(1e-4, fp32 ? 2.0 * atof(fp32) : 0.0);
    for (size_t i = 0; i < ldm_graph_param_count(g); i++) {
        ldm_tensor *p = ldm_graph_param_at(g, i);
        if (!ldm_lora_is_adapter(ldm_tensor_name(p))) {
            assert_null(ldm_tensor_grad(p)); /* the base weights are frozen: no gradient */
            continue;
        }
        size_t np = ldm_tensor_numel(p);
        float *gv = malloc(np * sizeof *gv);
        assert_non_null(gv);
        assert_status(ldm_tensor_read(ldm_tensor_grad(p), gv), LDM_OK);
        snprintf(key, sizeof key, "%s.grad.%s", kind, ldm_tensor_name(p));
        float *wv = test_st_load(ref, key, NULL, NULL);
        double e = test_norm_err(gv, wv, np);
        if (e > bar) fail_msg("gradient of %s off by %.3g norm-wise", ldm_tensor_name(p), e);
        grad_err = fmax(grad_err, e);
        free(gv);
        free(wv);
    }
    ldm_graph_memory mem = ldm_graph_memory_report(g);
    print_message("  %s with LoRA (%s, rank %d, alpha %g; %d adapter tensors) against peft: output "
                  "%.2e, loss %.2e, adapter gradients %.2e norm-wise (worst; bar %.2g); "
                  "trainable %llu bytes, frozen %llu\n",
                  kind, targets, lc.rank, (double)lc.alpha, adapters, out_err, loss_err, grad_err,
                  bar, (unsigned long long)mem.trainable_bytes,
                  (unsigned long long)mem.frozen_bytes);
    assert_true(out_err < 1e-5 && loss_err < 1e-5);
    return g;
}

/* ldm_sd_lora_save's file holds what the reference generator wrote from the same adapters under
 * kohya's names, tensor for tensor (which diffusers' load_lora_weights read back into the models
 * and computed peft's outputs from, to 2e-6). */
static void check_saved(const ldm_sd_model *m, ldm_graph *unet, ldm_graph *text) {
    char path[4400], ref_path[4096];
    char *dir = test_make_tmpdir("lora-train");
    snprintf(path, sizeof path, "%s/trained.safetensors", dir);
    int saved = 0;
    assert_status(ldm_sd_lora_save(m, unet, text, path, &saved), LDM_OK);
    snprintf(ref_path, sizeof ref_path, "%s/sd/lora_train_kohya.safetensors", LDMCL_TEST_REF_DIR);
    ldm_safetensors *got, *want;
    assert_status(ldm_safetensors_open(path, &got), LDM_OK);
    assert_status(ldm_safetensors_open(ref_path, &want), LDM_OK);
    assert_int_equal(ldm_safetensors_count(got), ldm_safetensors_count(want));
    assert_int_equal((size_t)saved * 3, ldm_safetensors_count(want));
    for (size_t i = 0; i < ldm_safetensors_count(want); i++) {
        const ldm_st_tensor *w = ldm_safetensors_at(want, i);
        const ldm_st_tensor *gt = ldm_safetensors_find(got, w->name);
        if (!gt) fail_msg("ldm_sd_lora_save wrote no '%s'", w->name);
        assert_int_equal(gt->numel, w->numel);
        assert_int_equal(gt->ndim, w->ndim);
        for (int d = 0; d < w->ndim; d++)
            assert_int_equal(gt->shape[d], w->shape[d]);
        float *a = test_st_load(got, w->name, NULL, NULL),
              *b = test_st_load(want, w->name, NULL, NULL);
        for (uint64_t k = 0; k < w->numel; k++)
            if (a[k] != b[k])
                fail_msg("'%s'[%llu]: %g, not %g", w->name, (unsigned long long)k, a[k], b[k]);
        free(a);
        free(b);
    }
    assert_string_equal(ldm_safetensors_metadata(got, "ss_network_module"), "networks.lora");
    print_message("  saved in kohya's format: %d layers, %zu tensors as the reference generator "
                  "wrote them\n",
                  saved, ldm_safetensors_count(got));
    ldm_safetensors_close(got);
    ldm_safetensors_close(want);
    test_rmtree(dir);
    free(dir);
}

static void training_adapters_match_peft(void **state) {
    (void)state;
    char ref_path[4096], path[4096];
    snprintf(ref_path, sizeof ref_path, "%s/sd/lora_train.safetensors", LDMCL_TEST_REF_DIR);
    ldm_safetensors *ref;
    assert_status(ldm_safetensors_open(ref_path, &ref), LDM_OK);
    sd_fixture_model_path("sd1", "single", path, sizeof path);
    ldm_sd_model m;
    assert_status(ldm_sd_model_inspect(path, &m), LDM_OK);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    const char *unet_in[] = {"x", "t", "context"}, *text_in[] = {"ids"};
    ldm_graph *unet = check_training(ctx, ref, &m, "unet", unet_in, 3,
                                     ldm_safetensors_metadata(ref, "unet_targets"),
                                     sd_fixture_record_unet, ldm_sd_load_unet);
    ldm_graph *text = check_training(ctx, ref, &m, "text", text_in, 1,
                                     ldm_safetensors_metadata(ref, "text_targets"),
                                     sd_fixture_record_text, ldm_sd_load_text);
    check_saved(&m, unet, text);
    ldm_graph_destroy(unet);
    ldm_graph_destroy(text);
    /* the kinds: attention only leaves the feed-forward, the projections and convolutions */
    unsigned t;
    assert_status(ldm_lora_targets_parse("attn", &t), LDM_OK);
    assert_int_equal(t, LDM_LORA_ATTN);
    assert_status(ldm_lora_targets_parse("attn+ff+conv", &t), LDM_OK);
    assert_int_equal(t, LDM_LORA_ATTN | LDM_LORA_FF | LDM_LORA_CONV);
    assert_status(ldm_lora_targets_parse("everything", &t), LDM_ERR_INVALID_ARGUMENT);
    int lin[2] = {8, 8}, conv3[4] = {8, 8, 3, 3}, conv1[4] = {8, 8, 1, 1}, vec[1] = {8};
    assert_int_equal(
        ldm_lora_kind("input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", 2, lin),
        LDM_LORA_ATTN);
    assert_int_equal(ldm_lora_kind("text_model.encoder.layers.0.mlp.fc2.weight", 2, lin),
                     LDM_LORA_FF);
    assert_int_equal(ldm_lora_kind("input_blocks.1.1.proj_in.weight", 4, conv1), LDM_LORA_LINEAR);
    assert_int_equal(ldm_lora_kind("input_blocks.1.0.in_layers.2.weight", 4, conv3), LDM_LORA_CONV);
    assert_int_equal(ldm_lora_kind("downs.0.attentions.0.in_proj_weight", 2, lin), LDM_LORA_ATTN);
    assert_int_equal(ldm_lora_kind("input_blocks.1.0.in_layers.2.bias", 1, vec), 0);
    assert_int_equal(ldm_lora_kind("text_model.embeddings.token_embedding.weight", 2, lin), 0);
    assert_int_equal(ldm_lora_kind("x.lora_down.weight", 2, lin), 0);
    ldm_ctx_destroy(ctx);
    ldm_safetensors_close(ref);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(training_adapters_match_peft),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

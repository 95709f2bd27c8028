/* tests/test_sd_models.c: Stable Diffusion's models at their published sizes (parameter counts
 * equal diffusers' UNet2DConditionModel at the SD 1.5, 1.5-inpainting and 2.1 configs and
 * AutoencoderKL at SD's: counted with diffusers 0.31) and their refusals of bad configurations
 * and inputs. Their numbers against diffusers are in test_models.c (sd_unet_*, sd_vae_*). */
#include <string.h>

#include "ldmcl/sd_unet.h"
#include "ldmcl/sd_vae.h"
#include "test_util.h"

static size_t count(ldm_ctx *ctx, const ldm_sd_unet_config *c) {
    size_t n = 0;
    assert_status(ldm_sd_unet_param_count(ctx, c, &n), LDM_OK);
    return n;
}

static void parameter_counts_equal_diffusers(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_sd_unet_config c;
    ldm_sd_unet_config_sd1(&c);
    assert_int_equal(count(ctx, &c), 859520964);
    c.in_channels = 9; /* the inpainting UNet: latents, mask, masked image's latents */
    assert_int_equal(count(ctx, &c), 859535364);
    ldm_sd_unet_config_sd2(&c);
    assert_int_equal(count(ctx, &c), 865910724);
    ldm_sd_vae_config v;
    ldm_sd_vae_config_sd(&v);
    size_t n = 0;
    assert_status(ldm_sd_vae_param_count(ctx, &v, &n), LDM_OK);
    assert_int_equal(n, 83653863);
    ldm_ctx_destroy(ctx);
}

static void bad_configs_are_named(void **state) {
    (void)state;
    ldm_sd_unet_config c;
    ldm_sd_unet_config_sd1(&c);
    c.head_channels = 64; /* both ways of giving heads */
    assert_status(ldm_sd_unet_config_check(&c), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "either num_heads (8) or head_channels (64)");
    ldm_sd_unet_config_sd1(&c);
    c.norm_groups = 48;
    assert_status(ldm_sd_unet_config_check(&c), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "not divisible by norm_groups 48");
    ldm_sd_unet_config_sd2(&c);
    c.head_channels = 96; /* 320 channels in 3.33 heads */
    assert_status(ldm_sd_unet_config_check(&c), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "level 0: 320 channels do not split into 3 heads");
    ldm_sd_unet_config_sd1(&c);
    c.num_res_blocks = 0;
    assert_status(ldm_sd_unet_config_check(&c), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "num_res_blocks 0");
}

static void bad_inputs_are_recording_errors(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_sd_unet_config c;
    ldm_sd_unet_config_sd1(&c);
    struct {
        int h, channels, ctx_dim;
        const char *message;
    } cases[] = {{36, 4, 768, "H and W multiples of 8"},
                 {32, 9, 768, "must be [N, 4, H, W]"},
                 {32, 4, 1024, "the context [1, 77, 1024] must be [1, S, 768]"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ldm_graph *g;
        assert_status(ldm_graph_create(ctx, &g), LDM_OK);
        ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(1, cases[i].channels, cases[i].h, 32));
        ldm_tensor *t = ldm_graph_input(g, "t", LDM_SHAPE(1));
        ldm_tensor *e = ldm_graph_input(g, "context", LDM_SHAPE(1, 77, cases[i].ctx_dim));
        assert_null(ldm_sd_unet(g, &c, x, t, e));
        assert_int_equal(ldm_graph_status(g), LDM_ERR_INVALID_ARGUMENT);
        assert_contains(ldm_graph_error(g), cases[i].message);
        ldm_graph_destroy(g);
    }
    ldm_ctx_destroy(ctx);
}

static void vae_refuses_bad_sizes(void **state) {
    (void)state;
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_sd_vae_config v;
    ldm_sd_vae_config_sd(&v);
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *x = ldm_graph_input(g, "image", LDM_SHAPE(1, 3, 60, 64));
    assert_null(ldm_sd_vae_encode(g, &v, x, NULL));
    assert_contains(ldm_graph_error(g), "'image' [1, 3, 60, 64] must be [N, 3, H, W] with H and W "
                                        "multiples of 8");
    ldm_graph_destroy(g);
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_tensor *z = ldm_graph_input(g, "latent", LDM_SHAPE(1, 8, 8, 8));
    assert_null(ldm_sd_vae_decode(g, &v, z));
    assert_contains(ldm_graph_error(g), "must be [N, 4, H, W]");
    ldm_graph_destroy(g);
    v.norm_groups = 24;
    assert_status(ldm_sd_vae_config_check(&v), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "level 0: 128 channels are not divisible by norm_groups 24");
    ldm_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parameter_counts_equal_diffusers),
        cmocka_unit_test(bad_configs_are_named),
        cmocka_unit_test(bad_inputs_are_recording_errors),
        cmocka_unit_test(vae_refuses_bad_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

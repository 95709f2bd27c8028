/* tests/fuzz/fuzz_train_state.c: libFuzzer target for the training state loader
 * (ldm_train_state_load in src/train/train_state.c, with ldm_graph_load of src/io/checkpoint.c).
 * LLVMFuzzerInitialize builds, on the OpenCL device (pocl on CI), a compiled graph with three
 * parameters: "w" [5], one with a long name ([2, 3]) and a frozen "frozen" [5], with an Adam
 * optimizer and an EMA. Each input is written as the state file and loaded with the optimizer and
 * the EMA, then without them. With LDMCL_FUZZ_WRITE_SEED=<path> the target writes that graph's
 * state (what ldm_train_state_save writes: the seed of its corpus) and exits. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "ldmcl/ldmcl.h"

/* Graph names have no length limit; nested models make long ones (this one: 123 characters). */
#define LONG_NAME                                                                                  \
    "ema.model.diffusion_model.output_blocks.11.1.transformer_blocks.0.attn1.to_out.0.lora."       \
    "adapters.subject.up_projection.weight"

static char g_path[4200];
static ldm_ctx *g_ctx;
static ldm_graph *g_graph;
static ldm_optimizer *g_opt;
static ldm_ema *g_ema;

static void check(ldm_status st, const char *what) {
    if (st == LDM_OK) return;
    fprintf(stderr, "fuzz_train_state: %s: %s\n", what, ldm_last_error());
    exit(1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_path(g_path, sizeof g_path, "state.safetensors");
    ldm_ctx_options o;
    ldm_ctx_options_init(&o);
    o.log = fuzz_log;
    o.no_gemm_tuning = 1;
    check(ldm_ctx_create(&o, &g_ctx), "opening the OpenCL device");
    check(ldm_graph_create(g_ctx, &g_graph), "creating the graph");
    ldm_graph *g = g_graph;
    ldm_tensor *w = ldm_graph_param(g, "w", LDM_SHAPE(5));
    ldm_tensor *v = ldm_graph_param(g, LONG_NAME, LDM_SHAPE(2, 3));
    ldm_tensor *f = ldm_graph_param(g, "frozen", LDM_SHAPE(5));
    ldm_tensor_set_init(w, LDM_INIT_NORMAL, 1.0f);
    ldm_tensor_set_init(v, LDM_INIT_UNIFORM, 0.5f);
    ldm_tensor_set_init(f, LDM_INIT_CONSTANT, 2.0f);
    ldm_tensor_set_trainable(f, 0);
    ldm_tensor *x = ldm_graph_input(g, "x", LDM_SHAPE(5));
    ldm_tensor *y = ldm_graph_input(g, "y", LDM_SHAPE(2, 3));
    ldm_tensor *loss =
        ldm_add(g, ldm_sum(g, ldm_mul(g, ldm_mul(g, w, f), x)), ldm_sum(g, ldm_mul(g, v, y)));
    check(ldm_graph_backward(g, loss), "recording the graph");
    check(ldm_graph_compile(g), "compiling the graph");
    check(ldm_graph_init_params(g, 1, 0), "initialising the parameters");
    ldm_adam_config a;
    ldm_adam_config_init(&a);
    check(ldm_adam_create(g, &a, &g_opt), "creating the optimizer");
    check(ldm_ema_create(g, 0.99f, 1, &g_ema), "creating the EMA");
    const char *seed = getenv("LDMCL_FUZZ_WRITE_SEED");
    if (seed && *seed) {
        float ones[6] = {1, 1, 1, 1, 1, 1};
        check(ldm_tensor_write(x, ones), "writing x");
        check(ldm_tensor_write(y, ones), "writing y");
        check(ldm_graph_run(g), "running the graph");
        check(ldm_optimizer_step(g_opt), "stepping the optimizer");
        check(ldm_ema_update(g_ema), "updating the EMA");
        const char *meta[] = {"data_position", "4", NULL};
        check(ldm_train_state_save(seed, g, g_opt, g_ema, meta), "saving the state");
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write(g_path, data, size);
    fuzz_status(ldm_train_state_load(g_path, g_graph, g_opt, g_ema));
    fuzz_status(ldm_train_state_load(g_path, g_graph, NULL, NULL));
    return 0;
}

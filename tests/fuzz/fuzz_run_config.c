/* tests/fuzz/fuzz_run_config.c: libFuzzer target for a training run's configuration
 * (src/train/run_config.c over src/io/ini.c): the input is the config file, in a folder that also
 * holds a small Hugging Face CLIP config (clip/config.json, for encoder = clip_frozen with
 * clip_path = clip). A config that reads is written back as a model.ini, which must read again,
 * and its learning-rate schedule and epochs are evaluated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "ldmcl/run_config.h"

static const char g_clip_config[] =
    "{\"architectures\": [\"CLIPTextModel\"], \"attention_dropout\": 0.0, \"bos_token_id\": 519,\n"
    " \"eos_token_id\": 520, \"hidden_act\": \"quick_gelu\", \"hidden_size\": 8,\n"
    " \"initializer_factor\": 1.0, \"initializer_range\": 0.02, \"intermediate_size\": 16,\n"
    " \"layer_norm_eps\": 1e-05, \"max_position_embeddings\": 77, \"model_type\": "
    "\"clip_text_model\",\n"
    " \"num_attention_heads\": 2, \"num_hidden_layers\": 2, \"pad_token_id\": 1,\n"
    " \"projection_dim\": 512, \"torch_dtype\": \"float32\", \"vocab_size\": 521}\n";

static char g_config[4200], g_model[4200];
static ldm_run_config g_c, g_back;
static volatile double g_sink;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char path[4200];
    fuzz_path(path, sizeof path, "clip");
    fuzz_mkdir(path);
    fuzz_path(path, sizeof path, "clip/config.json");
    fuzz_write(path, g_clip_config, sizeof g_clip_config - 1);
    fuzz_path(g_config, sizeof g_config, "config.ini");
    fuzz_path(g_model, sizeof g_model, "model.ini");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write(g_config, data, size);
    ldm_status st = ldm_run_config_read(g_config, &g_c);
    fuzz_status(st);
    if (st != LDM_OK) return 0;
    g_sink += ldm_model_latent_channels(&g_c.model) + ldm_model_latent_size(&g_c.model);
    for (int step = 0; step < 3; step++)
        g_sink += ldm_run_lr_at(&g_c, step * (g_c.ldm_train.max_steps / 2));
    g_sink += ldm_run_lr_at(&g_c, g_c.ldm_train.lr_warmup_steps);
    for (int k = 0; k < g_c.ldm_train.n_validation_prompts; k++)
        g_sink += (double)strlen(g_c.ldm_train.validation_prompts[k]);
    st = ldm_model_config_write(&g_c.model, g_model,
                                g_c.model.text == LDM_TEXT_CLIP_SCRATCH ? "v" : NULL);
    if (st != LDM_OK) {
        fprintf(stderr, "fuzz: a config that reads does not write: %s\n", ldm_last_error());
        abort();
    }
    st = ldm_run_config_read(g_model, &g_back);
    if (st != LDM_OK) {
        fprintf(stderr, "fuzz: the model.ini written from a config does not read: %s\n",
                ldm_last_error());
        abort();
    }
    ldm_run_config_resolve_epochs(&g_c, 1 + size % 100000, 1 + size % 100000);
    g_sink += g_c.ldm_train.max_steps + g_c.ae_train.steps;
    return 0;
}

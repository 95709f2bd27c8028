/* tests/fuzz/fuzz_sd_model.c: libFuzzer target for what a Stable Diffusion checkpoint is
 * (src/sample/sd_inspect.c, sd_diffusers.c): the first byte picks the layout. 0: the rest is a
 * single .safetensors file; otherwise it is split at FUZZ_SEP into a diffusers folder's
 * unet/config.json, vae/config.json, text_encoder/config.json, scheduler/scheduler_config.json and
 * unet/diffusion_pytorch_model.safetensors (empty weight files for the VAE and text encoder). Only
 * headers and configs are read: no device. */
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "ldmcl/sd_model.h"

static char g_file[4200], g_dir[4200];
static volatile int g_sink;

static void path_in(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", g_dir, name);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_path(g_file, sizeof g_file, "model.safetensors");
    fuzz_path(g_dir, sizeof g_dir, "diffusers");
    fuzz_mkdir(g_dir);
    static const char *parts[] = {"unet", "vae", "text_encoder", "scheduler"};
    char p[4300];
    for (int i = 0; i < 4; i++) {
        path_in(p, sizeof p, parts[i]);
        fuzz_mkdir(p);
    }
    path_in(p, sizeof p, "vae/diffusion_pytorch_model.safetensors");
    fuzz_write(p, "", 0);
    path_in(p, sizeof p, "text_encoder/model.safetensors");
    fuzz_write(p, "", 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    ldm_sd_model m;
    ldm_status s;
    if (data[0] == 0) {
        fuzz_write(g_file, data + 1, size - 1);
        s = ldm_sd_model_inspect(g_file, &m);
    } else {
        static const char *files[] = {"unet/config.json", "vae/config.json",
                                      "text_encoder/config.json", "scheduler/scheduler_config.json",
                                      "unet/diffusion_pytorch_model.safetensors"};
        fuzz_part parts[5];
        int n = fuzz_split(data + 1, size - 1, parts, 5);
        char p[4300];
        for (int i = 0; i < 5; i++) {
            path_in(p, sizeof p, files[i]);
            fuzz_write(p, i < n ? parts[i].data : (const uint8_t *)"", i < n ? parts[i].size : 0);
        }
        s = ldm_sd_model_inspect(g_dir, &m);
    }
    fuzz_status(s);
    if (s == LDM_OK) {
        char what[256];
        ldm_sd_model_describe(&m, what, sizeof what);
        g_sink += (int)strlen(what) + m.unet.n_levels + m.vae.n_levels + m.text.num_layers;
    }
    return 0;
}

/* tests/fuzz/fuzz_safetensors.c: libFuzzer target for the safetensors reader
 * (src/io/safetensors.c): the input is written to a file and opened (the reader maps files), then
 * every tensor is looked up, converted to float32 where its dtype allows, and the metadata read
 * as the training state and the latent cache read it. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "ldmcl/safetensors.h"

static volatile float g_sink;
static char g_path[4200];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_path(g_path, sizeof g_path, "input.safetensors");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write(g_path, data, size);
    ldm_safetensors *st = NULL;
    ldm_status s = ldm_safetensors_open(g_path, &st);
    fuzz_status(s);
    if (s != LDM_OK) return 0;
    for (size_t i = 0; i < ldm_safetensors_count(st); i++) {
        const ldm_st_tensor *t = ldm_safetensors_at(st, i);
        if (ldm_safetensors_find(st, t->name) != t) abort(); /* names are unique */
        g_sink += (float)strlen(ldm_dtype_name(t->dtype));
        /* the file holds numel elements, so the size is bounded by the input's */
        float *v = malloc((t->numel ? t->numel : 1) * sizeof *v);
        if (!v) abort();
        s = ldm_safetensors_read_f32(st, t, v);
        fuzz_status(s);
        for (uint64_t k = 0; s == LDM_OK && k < t->numel; k++)
            g_sink += v[k];
        free(v);
    }
    const char *keys[] = {"format", "ldmcl.state.graph_step", "ldmcl.cache.autoencoder_sha256"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        const char *m = ldm_safetensors_metadata(st, keys[k]);
        if (m) g_sink += (float)strlen(m);
        uint64_t u = 0;
        fuzz_status(ldm_safetensors_metadata_u64(st, keys[k], &u));
        g_sink += (float)u;
    }
    g_sink += ldm_safetensors_at(st, ldm_safetensors_count(st)) == NULL;
    ldm_safetensors_close(st);
    return 0;
}

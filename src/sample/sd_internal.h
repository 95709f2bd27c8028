/* src/sample/sd_internal.h: what the Stable Diffusion files share inside the sample layer. */
#ifndef LDMCL_SAMPLE_SD_INTERNAL_H
#define LDMCL_SAMPLE_SD_INTERNAL_H

#include "ldmcl/sd_model.h"

/* A diffusers folder (model_index.json's layout): configs, weight files, the tokenizer. */
ldm_status ldm_sd_inspect_diffusers(const char *dir, ldm_sd_model *m);

/* Refuses, naming it, a file ldmcl does not read by its extension: pickles (with the line that
 * converts one) and GGUF. */
ldm_status ldm_sd_refuse_by_extension(const char *path);

#endif

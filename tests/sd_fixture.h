/* tests/sd_fixture.h: Stable Diffusion test models made from the tiny ones in tests/ref/sd/. */
#ifndef LDMCL_TEST_SD_FIXTURE_H
#define LDMCL_TEST_SD_FIXTURE_H

#include <stddef.h>

#include "ldmcl/sd_model.h"

/* Writes dst: tests/ref/sd/<src> (a single file) as F32, without the tensors whose names start
 * with drop (NULL: none), with the tensor named reshape (NULL: none) as [numel, 1], and with the
 * text encoder's token embedding grown to vocab rows (0: as it is; new rows small and
 * deterministic) so that CLIP's real tokenizer fits it. Its ldmcl.sd_config metadata is kept. */
void sd_fixture_rewrite(const char *src, const char *dst, const char *drop, const char *reshape,
                        int vocab);

/* The path of tests/ref/sd/'s tiny model fam ("sd1", "sd2") in layout ("single": one file;
 * "diffusers": a folder). */
void sd_fixture_model_path(const char *fam, const char *layout, char *path, size_t size);

/* A model's UNet on in = {x, t, context}, its text encoder on in = {ids} (clip skip as m says):
 * the recorders tests pass around. */
ldm_tensor *sd_fixture_record_unet(ldm_graph *g, const ldm_sd_model *m, ldm_tensor **in);
ldm_tensor *sd_fixture_record_text(ldm_graph *g, const ldm_sd_model *m, ldm_tensor **in);

#endif

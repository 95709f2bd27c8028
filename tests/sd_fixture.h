/* tests/sd_fixture.h: Stable Diffusion test models made from the tiny ones in tests/ref/sd/. */
#ifndef LDMCL_TEST_SD_FIXTURE_H
#define LDMCL_TEST_SD_FIXTURE_H

/* Writes dst: tests/ref/sd/<src> (a single file) as F32, without the tensors whose names start
 * with drop (NULL: none), with the tensor named reshape (NULL: none) as [numel, 1], and with the
 * text encoder's token embedding grown to vocab rows (0: as it is; new rows small and
 * deterministic) so that CLIP's real tokenizer fits it. Its ldmcl.sd_config metadata is kept. */
void sd_fixture_rewrite(const char *src, const char *dst, const char *drop, const char *reshape,
                        int vocab);

#endif

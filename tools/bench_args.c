/* tools/bench_args.c: ldmcl-bench's command line: its usage text, its options (for telling a
 * mistyped one from a known one) and the parsing of its numbers and lists (see bench.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

void bench_usage(FILE *f) {
    fprintf(f,
            "usage: ldmcl-bench [options]\n"
            "  --list-devices        list OpenCL platforms and devices\n"
            "  --self-test           check the selected device's results against host references\n"
            "  --bench LIST          run benchmarks: copy,gemm,ops,cache or all (ops measures\n"
            "                        copy and gemm first: they are its peaks)\n"
            "  --bench unet          the seed UNet: sampling steps at batch 2 and 16, a training\n"
            "                        step at --train-batch (default 16)\n"
            "  --train-batch N       batch of the unet training step\n"
            "  --report              a device report to paste into an issue: device facts and\n"
            "                        tunables, self-test, the op tests (both kernel layouts),\n"
            "                        copy and SGEMM peaks, every op's share of them, the seed\n"
            "                        UNet's training step (--train-batch) and sampling step at\n"
            "                        batch 2 with device memory, and a summary table (warm-up 1,\n"
            "                        repeat 3 unless given)\n"
            "  --op-tests DIR        where --report finds the op tests (default: tests/ beside\n"
            "                        ldmcl-bench, as in the build folder)\n"
            "  --bench ae            the reference's mnist autoencoder (batch 64, 28x28): encode,\n"
            "                        decode and a training step with LPIPS and the discriminator\n"
            "  --bench ae-celebhq    the same for its celebhq autoencoder (batch 4, 256x256)\n"
            "  --bench allreduce     under mpirun -np N: the gradients' sum over the ranks (in\n"
            "                        buckets, as training does) for the seed UNet's 474 MB and\n"
            "                        the default model's, and the device-host copies around it\n"
            "  --bench job-step      under mpirun -np N: the default model's training step as one\n"
            "                        rank (configs/fashion_mnist.ini: run from the source tree)\n"
            "                        and the share of the gradients' sum hidden by backward\n"
            "");
    fprintf(f,
            "  --bench sd            Stable Diffusion at 256x256 and 512x512: a guided sampling\n"
            "                        step, the VAE decode, device memory; of --model FILE|DIR or\n"
            "                        of --random sd15|sd21 (random weights; default sd15);\n"
            "                        --weights f16 keeps the weights in half precision\n"
            "  --bench sd-train      its UNet's training step at batch 1 (Adam), full fine-tuning\n"
            "                        and LoRA (all_linear): --lora-ranks LIST (default 0,4,16;\n"
            "                        0 is full), --sides LIST (default 256,512),\n"
            "                        --checkpointing LIST (0 off, 1 gradient checkpointing;\n"
            "                        default 0), --memory-only (compile, report memory, run\n"
            "                        no step)\n"
            "  --bench clip          the CLIP text encoder: prompts/s at batch 1 and 16, and the\n"
            "                        seed UNet's training step with the encoder trained too\n"
            "  --shapes seed|small   op shapes of --bench ops and --tune: the seed UNet's at\n"
            "                        batch 16 (default on a GPU) or small ones (otherwise)\n"
            "  --json FILE           also write the figures as JSON\n"
            "  --tune-gemm           measure CLBlast GEMM parameters for this device (a minute\n"
            "                        on a CPU) and keep them in the kernel cache directory, where\n"
            "                        every ldmcl program finds them; skipped when the device has\n"
            "                        a tuning file already. Runs on its own\n"
            "  --retune              with --tune-gemm: measure again even so\n"
            "  --tune                measure the kernels' work-group sizes and tiles (and which\n"
            "                        variant of conv and GroupNorm runs) on this device and keep\n"
            "                        the fastest beside the GEMM tuning, where every ldmcl\n"
            "                        program finds them (LDMCL_TUNABLES overrides). Runs on its\n"
            "                        own; minutes\n"
            "  --tune-families LIST  with --tune: only these (attention, conv, group_norm,\n"
            "                        elementwise); the others keep their values\n"
            "  --no-gemm-tuning      leave CLBlast's default GEMM parameters (to compare)\n"
            "  --cl-platform P       platform index or name substring (env LDMCL_CL_PLATFORM)\n"
            "  --cl-device D         device index or name substring (env LDMCL_CL_DEVICE);\n"
            "                        without --cl-platform an index counts over all platforms\n"
            "  --warmup N            untimed runs before timing (default 2)\n"
            "  --repeat N            timed runs, the median is reported (default 10)\n"
            "  -v, --verbose         print the library's notes (device choice, kernel cache)\n"
            "  --version             print the version\n"
            "  -h, --help            this text\n"
            "Environment: LDMCL_CL_DIR (load cl/ sources from a directory), LDMCL_CL_CACHE=0\n"
            "(no binary kernel cache), LDMCL_CL_CACHE_DIR (its directory).\n");
}

/* Every option, for telling a mistyped one from a known one. */
const char *const bench_options[] = {
    "--list-devices", "--self-test",  "--tune-gemm",     "--tune",           "--tune-families",
    "--report",       "--op-tests",   "--retune",        "--no-gemm-tuning", "-v",
    "--verbose",      "-h",           "--help",          "--version",        "--bench",
    "--cl-platform",  "--cl-device",  "--json",          "--train-batch",    "--shapes",
    "--model",        "--random",     "--weights",       "--warmup",         "--repeat",
    "--sides",        "--lora-ranks", "--checkpointing", "--memory-only"};
const size_t bench_n_options = sizeof bench_options / sizeof bench_options[0];

int bench_parse_count(const char *flag, const char *v, int *out) {
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || x < 0 || x > 100000) {
        fprintf(stderr, "ldmcl-bench: %s needs a count from 0 to 100000, got '%s'\n", flag,
                v ? v : "(nothing)");
        return 0;
    }
    *out = (int)x;
    return 1;
}

/* A comma-separated list of counts (at most max, each from lo to hi) into out; 0 and a message
 * when it is not one. */
int bench_parse_list(const char *flag, const char *v, int lo, int hi, int *out, int max, int *n) {
    *n = 0;
    for (const char *p = v; p && *p && *n < max;) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x < lo || x > hi || (*end && *end != ',')) break;
        out[(*n)++] = (int)x;
        p = *end ? end + 1 : end;
        if (!*end) return 1;
    }
    fprintf(stderr,
            "ldmcl-bench: %s needs up to %d comma-separated numbers from %d to %d, got "
            "'%s'\n",
            flag, max, lo, hi, v ? v : "(nothing)");
    return 0;
}

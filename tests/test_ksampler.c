/* tests/test_ksampler.c: the sigma-space samplers and sigma schedules (ldmcl/ksampler.h) against
 * tests/ref/samplers.safetensors (tools/refgen/make_sampler_refs.py: k-diffusion's
 * CompVisDenoiser/CompVisVDenoiser, schedules and samplers, diffusers' DDIMScheduler "trailing"
 * and TCDScheduler, and the samplers no package carries written from their definitions). The
 * denoiser is the generator's fixed analytic model, computed here through ldmcl's own sigma <-> t
 * and prediction conversions, the draws replayed from the file: every step's denoised estimate
 * and the final sample must agree within 1e-5. Host only: no device. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldmcl/ldmcl.h"
#include "test_util.h"

#define REF LDMCL_TEST_REF_DIR "/samplers.safetensors"
enum { N = 16, STEPS = 7, T = 1000 };
static const double TOL = 1e-5;

static ldm_safetensors *g_ref;
static ldm_schedule *g_sd, *g_fashion;

static int setup(void **state) {
    (void)state;
    assert_status(ldm_safetensors_open(REF, &g_ref), LDM_OK);
    assert_status(ldm_schedule_create(LDM_SCHEDULE_SCALED_LINEAR, T, 0.00085, 0.012, &g_sd),
                  LDM_OK);
    assert_status(ldm_schedule_create(LDM_SCHEDULE_SCALED_LINEAR, T, 0.0015, 0.0195, &g_fashion),
                  LDM_OK);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    ldm_schedule_destroy(g_sd);
    ldm_schedule_destroy(g_fashion);
    ldm_safetensors_close(g_ref);
    return 0;
}

static float *load(const char *key, size_t *count) {
    int ndim = 0, shape[8];
    float *v = test_st_load(g_ref, key, &ndim, shape);
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)shape[i];
    if (count) *count = n;
    return v;
}

/* max |got - want| / max(|want|, 1) */
static double err(const double *got, const float *want, size_t n) {
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(got[i] - want[i]) / fmax(fabs(want[i]), 1.0);
        e = d > e ? d : e;
    }
    return e;
}

static void schedules_match_the_references(void **state) {
    (void)state;
    static const char *kinds[] = {"discrete", "karras",      "exponential",
                                  "ays",      "sgm_uniform", "simple"};
    static const int counts[] = {1, 4, 10, 25};
    const struct {
        const char *name;
        ldm_schedule *s;
    } sched[] = {{"sd", g_sd}, {"fashion", g_fashion}};
    for (int q = 0; q < 2; q++) {
        char key[128];
        snprintf(key, sizeof key, "schedule.%s.alphas_cumprod", sched[q].name);
        float *ac = load(key, NULL);
        double got[T];
        memcpy(got, sched[q].s->alphas_cumprod, sizeof got);
        assert_true(err(got, ac, T) < 1e-6);
        free(ac);
        for (int k = 0; k < 6; k++) {
            ldm_sigma_schedule kind;
            assert_status(ldm_sigma_schedule_from_name(kinds[k], &kind), LDM_OK);
            assert_string_equal(ldm_sigma_schedule_name(kind), kinds[k]);
            for (int c = 0; c < 4; c++) {
                int n = counts[c];
                snprintf(key, sizeof key, "sigmas.%s.%s.%d", sched[q].name, kinds[k], n);
                if (!ldm_safetensors_find(g_ref, key)) continue;
                size_t len;
                float *want = load(key, &len);
                assert_int_equal(len, (size_t)n + 1);
                double s[32];
                assert_status(ldm_sigmas(sched[q].s, kind, n, s), LDM_OK);
                double e = err(s, want, len);
                if (e > TOL) fail_msg("%s: error %g", key, e);
                free(want);
            }
        }
        /* sigma -> t and t -> sigma on probes across (and beyond) the range */
        snprintf(key, sizeof key, "sigma_to_t.%s.sigma", sched[q].name);
        size_t np;
        float *sg = load(key, &np);
        snprintf(key, sizeof key, "sigma_to_t.%s.t", sched[q].name);
        float *tt = load(key, NULL);
        for (size_t i = 0; i < np; i++) {
            double t = ldm_schedule_timestep(sched[q].s, sg[i]);
            if (fabs(t - tt[i]) > 1e-3) fail_msg("sigma %g: t %.6f, want %.6f", sg[i], t, tt[i]);
        }
        free(sg);
        free(tt);
        snprintf(key, sizeof key, "t_to_sigma.%s.t", sched[q].name);
        tt = load(key, &np);
        snprintf(key, sizeof key, "t_to_sigma.%s.sigma", sched[q].name);
        sg = load(key, NULL);
        for (size_t i = 0; i < np; i++) {
            double s = ldm_schedule_sigma(sched[q].s, tt[i]);
            if (fabs(s - sg[i]) > TOL * fmax(sg[i], 1.0))
                fail_msg("t %g: sigma %g, want %g", tt[i], s, sg[i]);
        }
        free(sg);
        free(tt);
    }
}

/* ---- one trajectory ---------------------------------------------------------------------- */

typedef struct traj {
    ldm_prediction prediction;
    float *noise, *denoised;
    size_t draws;
    int checked;
    double worst;
    const char *key;
} traj;

/* The generator's inner model: for data N(mu_j, 0.25), the exact epsilon (or v) at sigma(t),
 * plus 0.05 tanh(x_in). */
static void inner(const traj *c, const float *x_in, double t, float *pred) {
    double sigma = ldm_schedule_sigma(g_sd, t), c_in = 1.0 / sqrt(sigma * sigma + 1.0);
    for (int j = 0; j < N; j++) {
        double mu = 0.5 * sin(j + 1.0), x = x_in[j] / c_in;
        double den = mu + 0.25 / (0.25 + sigma * sigma) * (x - mu), p;
        if (c->prediction == LDM_PREDICT_V)
            p = (x / (sigma * sigma + 1) - den) * sqrt(sigma * sigma + 1) / sigma;
        else
            p = (x - den) / sigma;
        pred[j] = (float)(p + 0.05 * tanh(x_in[j]));
    }
}

static ldm_status denoise(void *user, float *x, double sigma, float *den) {
    traj *c = user;
    float x_in[N], pred[N];
    double c_in = 1.0 / sqrt(sigma * sigma + 1.0);
    for (int j = 0; j < N; j++)
        x_in[j] = (float)(x[j] * c_in);
    inner(c, x_in, ldm_schedule_timestep(g_sd, sigma), pred);
    ldm_denoised_from_prediction(c->prediction, sigma, N, x, pred, den);
    return LDM_OK;
}

static ldm_status noise(void *user, int draw, float *z) {
    traj *c = user;
    if ((size_t)draw >= c->draws)
        fail_msg("%s: draw %d, the reference drew %zu", c->key, draw, c->draws);
    memcpy(z, c->noise + (size_t)draw * N, N * sizeof *z);
    return LDM_OK;
}

static ldm_status noise_free(void *user, int draw, float *z) {
    (void)user;
    (void)draw;
    (void)z;
    fail_msg("a deterministic sampler drew noise");
    return LDM_ERR_INVALID_ARGUMENT;
}

static ldm_status after_step(void *user, int k, int steps, double sigma, const float *den) {
    traj *c = user;
    (void)sigma;
    assert_int_equal(steps, STEPS);
    assert_int_equal(k, c->checked);
    double got[N];
    for (int j = 0; j < N; j++)
        got[j] = den[j];
    double e = err(got, c->denoised + (size_t)k * N, N);
    c->worst = e > c->worst ? e : c->worst;
    c->checked++;
    return LDM_OK;
}

static void check_case(const char *key, ldm_sampler_method m, ldm_prediction p,
                       ldm_sigma_schedule kind, float eta) {
    char k[160];
    traj c = {.prediction = p, .key = key};
    snprintf(k, sizeof k, "%s.noise", key);
    if (ldm_safetensors_find(g_ref, k)) {
        size_t len;
        c.noise = load(k, &len);
        c.draws = len / N;
    }
    snprintf(k, sizeof k, "%s.denoised", key);
    c.denoised = load(k, NULL);
    snprintf(k, sizeof k, "%s.start", key);
    float *x = load(k, NULL);
    snprintf(k, sizeof k, "%s.out", key);
    float *want = load(k, NULL);
    double sigmas[STEPS + 1];
    assert_status(ldm_ksampler_sigmas(m, g_sd, kind, STEPS, sigmas), LDM_OK);
    snprintf(k, sizeof k, "%s.sigmas", key);
    if (ldm_safetensors_find(g_ref, k)) {
        float *ws = load(k, NULL);
        assert_true(err(sigmas, ws, STEPS + 1) < TOL);
        free(ws);
    }
    snprintf(k, sizeof k, "%s.timesteps", key);
    if (ldm_safetensors_find(g_ref, k)) { /* ddim_trailing and tcd: their own timesteps */
        float *wt = load(k, NULL);
        for (int i = 0; i < STEPS; i++)
            assert_true(fabs(ldm_schedule_timestep(g_sd, sigmas[i]) - wt[i]) < 1e-6);
        free(wt);
    }
    ldm_denoiser d = {N, denoise, noise, after_step, &c};
    assert_status(ldm_ksample(m, g_sd, sigmas, STEPS, 0, eta, &d, NULL, x), LDM_OK);
    assert_int_equal(c.checked, STEPS);
    double got[N];
    for (int j = 0; j < N; j++)
        got[j] = x[j];
    double e = err(got, want, N);
    print_message("%-34s denoised %.2e  out %.2e  (%zu draws)\n", key, c.worst, e, c.draws);
    if (c.worst > TOL || e > TOL) fail_msg("%s: trajectory error %g, final %g", key, c.worst, e);
    free(c.noise);
    free(c.denoised);
    free(x);
    free(want);
}

static void samplers_match_k_diffusion_and_diffusers(void **state) {
    (void)state;
    static const char *methods[] = {"euler",     "euler_a", "heun",          "dpm2",
                                    "dpm++2s_a", "dpm++2m", "dpm++2mv2",     "ipndm",
                                    "ipndm_v",   "lcm",     "ddim_trailing", "tcd"};
    int cases = 0;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        ldm_sampler_method m;
        assert_status(ldm_sampler_method_from_name(methods[i], &m), LDM_OK);
        assert_string_equal(ldm_sampler_method_name(m), methods[i]);
        for (int v = 0; v < 2; v++) {
            ldm_prediction p = v ? LDM_PREDICT_V : LDM_PREDICT_EPSILON;
            char key[128];
            if (m == LDM_SAMPLER_DDIM_TRAILING || m == LDM_SAMPLER_TCD) {
                for (int e = 0; e < 2; e++) {
                    snprintf(key, sizeof key, "traj.%s.%s.eta%d", methods[i], v ? "v" : "eps",
                             e * 3);
                    check_case(key, m, p, LDM_SIGMAS_DISCRETE, e ? 0.3f : 0.0f);
                    cases++;
                }
                continue;
            }
            for (int kind = 0; kind < 2; kind++) {
                ldm_sigma_schedule s = kind ? LDM_SIGMAS_KARRAS : LDM_SIGMAS_DISCRETE;
                snprintf(key, sizeof key, "traj.%s.%s.%s", methods[i], v ? "v" : "eps",
                         ldm_sigma_schedule_name(s));
                check_case(key, m, p, s, 0.0f);
                cases++;
            }
        }
    }
    assert_int_equal(cases, 48);
}

/* img2img: running steps first .. S-1 of an S-step schedule from an init equals running a
 * schedule that is those levels alone (k-diffusion's img2img: sigmas[first:], x = init + noise
 * sigma); for ddim_trailing, starting at the first step's timestep from the init noised there. */
static void partial_chains_start_from_the_init(void **state) {
    (void)state;
    static const ldm_sampler_method methods[] = {LDM_SAMPLER_EULER, LDM_SAMPLER_HEUN,
                                                 LDM_SAMPLER_DPMPP_2M, LDM_SAMPLER_IPNDM_V};
    float init[N], noise[N], a[N], b[N];
    for (int j = 0; j < N; j++)
        init[j] = 0.7f * cosf((float)j), noise[j] = sinf(3.0f * (float)j + 1.0f);
    traj c = {.prediction = LDM_PREDICT_EPSILON, .key = "partial"};
    ldm_denoiser d = {N, denoise, noise_free, NULL, &c};
    for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
        double sg[STEPS + 1];
        assert_status(ldm_sigmas(g_sd, LDM_SIGMAS_KARRAS, STEPS, sg), LDM_OK);
        memcpy(a, noise, sizeof a);
        memcpy(b, noise, sizeof b);
        assert_status(ldm_ksample(methods[i], g_sd, sg, STEPS, 3, 0.0f, &d, init, a), LDM_OK);
        assert_status(ldm_ksample(methods[i], g_sd, sg + 3, STEPS - 3, 0, 0.0f, &d, init, b),
                      LDM_OK);
        assert_memory_equal(a, b, sizeof a);
    }
    /* ddim_trailing from step 3 of 7: the init at timestep 570 (noise sqrt(1 - ab)) */
    memcpy(a, noise, sizeof a);
    double sg[STEPS + 1];
    assert_status(
        ldm_ksampler_sigmas(LDM_SAMPLER_DDIM_TRAILING, g_sd, LDM_SIGMAS_DISCRETE, STEPS, sg),
        LDM_OK);
    assert_true(fabs(ldm_schedule_timestep(g_sd, sg[3]) - 570.0) < 1e-6);
    assert_status(ldm_ksample(LDM_SAMPLER_DDIM_TRAILING, g_sd, sg, STEPS, 3, 0.0f, &d, init, a),
                  LDM_OK);
    for (int j = 0; j < N; j++)
        assert_true(isfinite(a[j]));
    assert_status(ldm_ksample(LDM_SAMPLER_EULER, g_sd, sg, STEPS, STEPS, 0.0f, &d, init, a),
                  LDM_ERR_INVALID_ARGUMENT);
}

static void bad_names_and_step_counts_are_refused(void **state) {
    (void)state;
    ldm_sampler_method m;
    ldm_sigma_schedule s;
    assert_status(ldm_sampler_method_from_name("euler_ancestral", &m), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "unknown sampling method 'euler_ancestral'");
    assert_contains(ldm_last_error(), "euler_a, heun");
    assert_status(ldm_sigma_schedule_from_name("Karras", &s), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "known: discrete, karras");
    double sig[64];
    assert_status(ldm_sigmas(g_sd, LDM_SIGMAS_KARRAS, 0, sig), LDM_ERR_INVALID_ARGUMENT);
    assert_status(ldm_ksampler_sigmas(LDM_SAMPLER_TCD, g_sd, LDM_SIGMAS_DISCRETE, 51, sig),
                  LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "tcd with 51 steps");
    assert_status(ldm_ksampler_sigmas(LDM_SAMPLER_TCD, g_sd, LDM_SIGMAS_DISCRETE, 50, sig), LDM_OK);
    float x[N] = {0};
    ldm_denoiser d = {N, denoise, noise, NULL, NULL};
    assert_status(ldm_ksample(LDM_SAMPLER_DDIM, g_sd, sig, 4, 0, 0.0f, &d, NULL, x),
                  LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "ddim is not a sigma-space sampler");
    assert_true(ldm_sampler_method_is_stochastic(LDM_SAMPLER_EULER_A, 0.0f));
    assert_false(ldm_sampler_method_is_stochastic(LDM_SAMPLER_DPMPP_2M, 1.0f));
    assert_true(ldm_sampler_method_is_stochastic(LDM_SAMPLER_TCD, 0.3f));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(schedules_match_the_references),
        cmocka_unit_test(samplers_match_k_diffusion_and_diffusers),
        cmocka_unit_test(partial_chains_start_from_the_init),
        cmocka_unit_test(bad_names_and_step_counts_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

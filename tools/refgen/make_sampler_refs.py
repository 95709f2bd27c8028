#!/usr/bin/env python3
"""tools/refgen/make_sampler_refs.py: writes tests/ref/samplers.safetensors, the sigma schedules and
sampler trajectories tests/test_ksampler.c compares ldmcl's sigma-space samplers against.

    python3 -m venv --system-site-packages VENV      # a Python with PyTorch (Debian's will do)
    VENV/bin/pip install --no-deps k-diffusion==0.1.1.post1 diffusers==0.31.0 torchdiffeq torchsde
    VENV/bin/pip install "numpy<2" scipy tqdm safetensors huggingface_hub regex pillow
    VENV/bin/python tools/refgen/make_sampler_refs.py [--out tests/ref]

Independent implementations where one exists on PyPI:
  k-diffusion 0.1.1 (crowsonkb): CompVisDenoiser / CompVisVDenoiser (sigma <-> t, c_in, the
    epsilon and v parameterisations), get_sigmas (discrete), get_sigmas_karras,
    get_sigmas_exponential, and the samplers euler, euler_ancestral, heun, dpm_2,
    dpmpp_2s_ancestral, dpmpp_2m;
  diffusers 0.31: DDIMScheduler (timestep_spacing "trailing") and TCDScheduler, for
    ddim_trailing and tcd.
Written here from their published definitions, because no PyPI package carries them: the sigma
schedules ays (NVIDIA's table), sgm_uniform and simple (ComfyUI's definitions) and the samplers
lcm, ipndm, ipndm_v (diff-sampler's, as ComfyUI runs them) and dpm++2mv2 (stable-diffusion.cpp's).

The denoiser is fixed and analytic, so the C test can compute it too: the inner model sees
x_in = c_in x at timestep t and predicts, for sigma = sigma(t) and data N(mu_j, S^2), the exact
epsilon (or v) of that Gaussian plus 0.05 tanh(x_in). Everything runs in float64; the start noise
and every draw are stored, so the C test replays them.
"""
import argparse
import importlib
import math
import os
import sys
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

torch.set_default_dtype(torch.float64)

from diffusers import DDIMScheduler, TCDScheduler  # noqa: E402  (before k_diffusion's stand-in)
import diffusers.schedulers.scheduling_tcd as tcd_module  # noqa: E402

# k_diffusion/__init__ imports its training stack (torchvision, wandb, ...); only its sampling and
# external modules are needed, so the package is loaded without running __init__.
KD_DIR = None
for p in sys.path:
    if os.path.isdir(os.path.join(p, "k_diffusion")):
        KD_DIR = os.path.join(p, "k_diffusion")
        break
if KD_DIR is None:
    sys.exit("k-diffusion is not installed (see this script's docstring)")
sys.modules.setdefault("torchvision", types.ModuleType("torchvision"))
tv_transforms = types.ModuleType("torchvision.transforms")
tv_transforms.functional = types.ModuleType("torchvision.transforms.functional")
sys.modules.setdefault("torchvision.transforms", tv_transforms)
sys.modules.setdefault("torchvision.transforms.functional", tv_transforms.functional)
kd = types.ModuleType("k_diffusion")
kd.__path__ = [KD_DIR]
sys.modules["k_diffusion"] = kd
K_sampling = importlib.import_module("k_diffusion.sampling")
K_external = importlib.import_module("k_diffusion.external")

N = 16  # latent values
STEPS = 7
S2 = 0.25  # data variance


def f32(x):
    """Rounded to float32 (as stored), so the C test replays exactly the values used here."""
    return x.float().double()


def schedule(beta_start, beta_end, T=1000):
    betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, T) ** 2  # scaled_linear
    return betas, torch.cumprod(1 - betas, 0)


class Inner:
    """The fixed inner model (see the docstring) in CompVis's apply_model shape."""

    def __init__(self, alphas_cumprod, v):
        self.alphas_cumprod = alphas_cumprod
        self.v = v
        self.mu = 0.5 * torch.sin(torch.arange(N, dtype=torch.float64) + 1.0)
        self.sched = K_external.DiscreteSchedule(((1 - alphas_cumprod) / alphas_cumprod) ** 0.5, False)

    def __call__(self, x_in, t):
        sigma = self.sched.t_to_sigma(torch.as_tensor(t, dtype=torch.float64).reshape(-1))
        c_in = 1 / (sigma ** 2 + 1) ** 0.5
        x = x_in / c_in
        den = self.mu + S2 / (S2 + sigma ** 2) * (x - self.mu)
        if self.v:  # D = x/(s^2+1) - s/sqrt(s^2+1) v
            pred = (x / (sigma ** 2 + 1) - den) * (sigma ** 2 + 1) ** 0.5 / sigma
        else:
            pred = (x - den) / sigma
        return pred + 0.05 * torch.tanh(x_in)

    def apply_model(self, x, t, cond=None):
        return self(x, t)


class Noise:
    """A noise_sampler that hands out, and records, fixed draws."""

    def __init__(self, gen):
        self.gen, self.draws = gen, []

    def __call__(self, *args):
        z = f32(torch.randn(1, N, generator=self.gen))
        self.draws.append(z)
        return z


# ---- the samplers no PyPI package carries, from their definitions ----------------------------

def lcm(model, x, sigmas, noise, callback):
    for i in range(len(sigmas) - 1):
        den = model(x, sigmas[i])
        callback({"denoised": den})
        x = den
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * noise()
    return x


def dpmpp_2mv2(model, x, sigmas, callback):
    old = None
    for i in range(len(sigmas) - 1):
        den = model(x, sigmas[i])
        callback({"denoised": den})
        s, nxt = sigmas[i], sigmas[i + 1]
        if nxt == 0:
            x = den
        elif old is None:
            h = math.log(s) - math.log(nxt)
            x = nxt / s * x - math.expm1(-h) * den
        else:
            h = math.log(s) - math.log(nxt)
            h_last = math.log(sigmas[i - 1]) - math.log(s)
            lo, hi = min(h, h_last), max(h, h_last)
            r = hi / lo
            d = (1 + 1 / (2 * r)) * den - (1 / (2 * r)) * old
            x = nxt / s * x - math.expm1(-(hi + lo) / 2) * d
        old = den
    return x


def ipndm(model, x, sigmas, callback, variable):
    hist = []  # newest last
    for i in range(len(sigmas) - 1):
        s, nxt = float(sigmas[i]), float(sigmas[i + 1])
        den = model(x, sigmas[i])
        callback({"denoised": den})
        d = (x - den) / s
        order = min(4, i + 1)
        if nxt == 0:
            x_next = den
        elif not variable or order == 1:
            w = [[1], [3 / 2, -1 / 2], [23 / 12, -16 / 12, 5 / 12],
                 [55 / 24, -59 / 24, 37 / 24, -9 / 24]][order - 1]
            x_next = x + (nxt - s) * sum(c * v for c, v in zip(w, [d] + hist[::-1]))
        else:
            sg = [float(v) for v in sigmas]
            h0 = nxt - s
            h1 = s - sg[i - 1]
            c = [(2 + h0 / h1) / 2, -(h0 / h1) / 2, 0.0, 0.0]
            if order >= 3:
                h2 = sg[i - 1] - sg[i - 2]
                t1 = (1 - h0 / (3 * (h0 + h1)) * (h0 * (h0 + h1)) / (h1 * (h1 + h2))) / 2
                c[0] += t1
                c[1] -= (1 + h1 / h2) * t1
                c[2] = t1 * h1 / h2
            if order == 4:
                h3 = sg[i - 2] - sg[i - 3]
                t2 = (((1 - h0 / (3 * (h0 + h1))) / 2 + (1 - h0 / (2 * (h0 + h1))) * h0 / (6 * (h0 + h1 + h2)))
                      * (h0 * (h0 + h1) * (h0 + h1 + h2)) / (h1 * (h1 + h2) * (h1 + h2 + h3)))
                q = h1 * (h1 + h2) / (h2 * (h2 + h3))
                c[0] += t2
                c[1] -= (1 + h1 / h2 + q) * t2
                c[2] += (h1 / h2 + q * (1 + h2 / h3)) * t2
                c[3] = -t2 * q * h1 / h2
            x_next = x + (nxt - s) * sum(cc * v for cc, v in zip(c, [d] + hist[::-1]))
        hist.append(d)
        if len(hist) > 3:
            hist.pop(0)
        x = x_next
    return x


# ---- the sigma schedules ---------------------------------------------------------------------

AYS_SD15 = [14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092,
            0.9642583904, 0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582]


def sigmas_of(kind, model, n):
    lo, hi = float(model.sigma_min), float(model.sigma_max)
    T = len(model.sigmas)
    if kind == "discrete":
        return K_external.DiscreteSchedule.get_sigmas(model, n)
    if kind == "karras":
        return K_sampling.get_sigmas_karras(n, lo, hi)
    if kind == "exponential":
        return K_sampling.get_sigmas_exponential(n, lo, hi)
    if kind == "sgm_uniform":  # ComfyUI: linspace(t_max, t_min, n + 1)[:-1], then 0
        ts = torch.linspace(T - 1, 0, n + 1)[:-1]
        return K_sampling.append_zero(model.t_to_sigma(ts))
    if kind == "simple":  # ComfyUI: sigmas[-(1 + int(i T / n))]
        ss = T / n
        return torch.tensor([float(model.sigmas[-(1 + int(i * ss))]) for i in range(n)] + [0.0])
    if kind == "ays":  # the table, log-linear to n + 1 levels, stretched to [lo, hi], last 0
        tab = torch.tensor(AYS_SD15).log()
        xs = torch.linspace(0, 1, n + 1) * 10
        j = xs.floor().clamp(max=9).long()
        f = xs - j
        ls = (1 - f) * tab[j] + f * tab[j + 1]
        u = (ls - math.log(AYS_SD15[-1])) / (math.log(AYS_SD15[0]) - math.log(AYS_SD15[-1]))
        out = (math.log(lo) + u * (math.log(hi) - math.log(lo))).exp()
        out[-1] = 0
        return out
    raise ValueError(kind)


# ---- diffusers' schedulers -----------------------------------------------------------------

def diffusers_run(name, betas, ac, v, x, eta, gen):
    common = dict(num_train_timesteps=len(betas), trained_betas=betas.tolist(),
                  prediction_type="v_prediction" if v else "epsilon")
    if name == "ddim_trailing":
        sch = DDIMScheduler(clip_sample=False, set_alpha_to_one=False, steps_offset=0,
                            timestep_spacing="trailing", **common)
    else:
        sch = TCDScheduler(original_inference_steps=50, set_alpha_to_one=False, **common)
    sch.alphas_cumprod = ac.clone()  # float64, as ldmcl's schedule
    sch.final_alpha_cumprod = ac[0].clone()
    sch.set_timesteps(STEPS)
    inner = Inner(ac, v)
    noise = Noise(gen)
    tcd_module.randn_tensor = lambda shape, **kw: noise().reshape(shape)
    x = x.reshape(1, N)
    dens = []
    for t in sch.timesteps:
        out = inner(x, float(t))
        a = ac[int(t)]
        den = (a.sqrt() * x - (1 - a).sqrt() * out) if v else (x - (1 - a).sqrt() * out) / a.sqrt()
        dens.append(den.reshape(-1))
        if name == "ddim_trailing":
            z = noise() if eta > 0 else None
            x = sch.step(out, t, x, eta=eta, variance_noise=z).prev_sample
        else:
            x = sch.step(out, t, x, eta=eta).prev_sample
    return x, dens, noise.draws, [int(t) for t in sch.timesteps]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "ref"))
    args = ap.parse_args()
    gen = torch.Generator().manual_seed(19)
    tensors, meta = {}, {}
    schedules = {"sd": (0.00085, 0.012), "fashion": (0.0015, 0.0195)}
    for sname, (b0, b1) in schedules.items():
        betas, ac = schedule(b0, b1)
        tensors[f"schedule.{sname}.alphas_cumprod"] = ac
        model = K_external.CompVisDenoiser(Inner(ac, False))
        for kind in ["discrete", "karras", "exponential", "ays", "sgm_uniform", "simple"]:
            for n in [1, 4, 10, 25]:
                if kind == "ays" and n < 2:
                    continue
                tensors[f"sigmas.{sname}.{kind}.{n}"] = sigmas_of(kind, model, n)
        probe = torch.exp(torch.linspace(math.log(float(model.sigma_min)) - 0.5,
                                         math.log(float(model.sigma_max)) + 0.5, 37))
        tensors[f"sigma_to_t.{sname}.sigma"] = probe
        tensors[f"sigma_to_t.{sname}.t"] = model.sigma_to_t(probe)
        ts = torch.linspace(0, 999, 29) + 0.37 * torch.sin(torch.arange(29.0))
        ts = ts.clamp(0, 999)
        tensors[f"t_to_sigma.{sname}.t"] = ts
        tensors[f"t_to_sigma.{sname}.sigma"] = model.t_to_sigma(ts)

    betas, ac = schedule(*schedules["sd"])
    def one(m):  # the denoiser at a scalar sigma, for the samplers written here
        return lambda x, s: m(x, torch.as_tensor(s).reshape(1))

    k_samplers = {
        "euler": lambda m, x, s, nz, cb: K_sampling.sample_euler(m, x, s, callback=cb, disable=True),
        "euler_a": lambda m, x, s, nz, cb: K_sampling.sample_euler_ancestral(
            m, x, s, callback=cb, disable=True, noise_sampler=nz),
        "heun": lambda m, x, s, nz, cb: K_sampling.sample_heun(m, x, s, callback=cb, disable=True),
        "dpm2": lambda m, x, s, nz, cb: K_sampling.sample_dpm_2(m, x, s, callback=cb, disable=True),
        "dpm++2s_a": lambda m, x, s, nz, cb: K_sampling.sample_dpmpp_2s_ancestral(
            m, x, s, callback=cb, disable=True, noise_sampler=nz),
        "dpm++2m": lambda m, x, s, nz, cb: K_sampling.sample_dpmpp_2m(m, x, s, callback=cb, disable=True),
        "dpm++2mv2": lambda m, x, s, nz, cb: dpmpp_2mv2(one(m), x, s, cb),
        "ipndm": lambda m, x, s, nz, cb: ipndm(one(m), x, s, cb, False),
        "ipndm_v": lambda m, x, s, nz, cb: ipndm(one(m), x, s, cb, True),
        "lcm": lambda m, x, s, nz, cb: lcm(one(m), x, s, nz, cb),
    }
    cases = []
    for name, fn in k_samplers.items():
        for v in (0, 1):
            for kind in ("discrete", "karras"):
                inner = Inner(ac, bool(v))
                model = (K_external.CompVisVDenoiser if v else K_external.CompVisDenoiser)(inner)
                sig = sigmas_of(kind, model, STEPS)
                start = f32(torch.randn(1, N, generator=gen))
                noise = Noise(gen)
                dens = []
                x = fn(lambda x, s, m=model: m(x, s, cond=None), start * sig[0], sig, noise,
                       lambda d: dens.append(d["denoised"].reshape(-1)))
                key = f"traj.{name}.{'v' if v else 'eps'}.{kind}"
                cases.append(key)
                tensors[key + ".start"] = start.reshape(-1)
                tensors[key + ".sigmas"] = sig
                tensors[key + ".denoised"] = torch.stack(dens)
                tensors[key + ".out"] = x.reshape(-1)
                if noise.draws:
                    tensors[key + ".noise"] = torch.cat(noise.draws)
    for name in ("ddim_trailing", "tcd"):
        for v in (0, 1):
            for eta in (0.0, 0.3):
                start = f32(torch.randn(N, generator=gen))
                x, dens, draws, ts = diffusers_run(name, betas, ac, bool(v), start.clone(), eta, gen)
                key = f"traj.{name}.{'v' if v else 'eps'}.eta{int(eta * 10)}"
                cases.append(key)
                tensors[key + ".start"] = start
                tensors[key + ".timesteps"] = torch.tensor(ts, dtype=torch.float64)
                tensors[key + ".denoised"] = torch.stack(dens)
                tensors[key + ".out"] = x.reshape(-1)
                if draws:
                    tensors[key + ".noise"] = torch.cat([d.reshape(1, -1) for d in draws])
    meta["cases"] = ",".join(cases)
    meta["steps"] = STEPS
    meta["n"] = N
    meta["data_variance"] = S2
    os.makedirs(args.out, exist_ok=True)
    st.write(os.path.join(args.out, "samplers.safetensors"),
             {k: v.detach().double().numpy() for k, v in tensors.items()}, meta)


if __name__ == "__main__":
    main()

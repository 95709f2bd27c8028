#!/usr/bin/env python3
# tests/fuzz/make_seeds.py [BUILD_DIR]: writes the seed corpora of the fuzz targets into
# tests/fuzz/corpus/<target>/seed-*: small real examples, some copied from the repository
# (configs/, tests/ref/), the others written here with the standard library only (safetensors,
# PNGs, tokenizer files). JPEG variants need libjpeg-turbo's cjpeg and jpegtran (Debian:
# libjpeg-turbo-progs) and are skipped without them; the training-state seed is written by the
# library itself through BUILD_DIR/tests/fuzz/fuzz_train_state (LDMCL_FUZZ_WRITE_SEED), skipped
# when that is not built. Files the fuzzers found (crash-*, regress-*) are left alone.
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
CORPUS = os.path.join(HERE, "corpus")
SEP = b"\n-----\n"  # fuzz_util.h: FUZZ_SEP


def out(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def repo(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


# ---- safetensors -----------------------------------------------------------------------------

DTYPES = {"F32": "<f", "F16": "<e", "F64": "<d", "I32": "<i", "I64": "<q", "U8": "<B",
          "I8": "<b", "I16": "<h", "U16": "<H", "BOOL": "<B", "U32": "<I", "U64": "<Q"}


def safetensors(tensors, metadata=None, bf16=()):
    """tensors: [(name, dtype, shape, values)]; as ldm_safetensors_write lays files out (header
    padded with spaces to 8 bytes)."""
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, values in tensors:
        if dtype == "BF16":
            raw = b"".join(struct.pack("<f", v)[2:] for v in values)
        elif dtype in ("F6_E2M3", "F8_E4M3"):
            raw = bytes(values)
        else:
            raw = b"".join(struct.pack(DTYPES[dtype], v) for v in values)
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def seeds_safetensors():
    out("safetensors", "samples.safetensors", repo("tests/ref/reference_model_samples.safetensors"))
    out("safetensors", "patches.safetensors", repo("tests/ref/latents.safetensors"))
    out("safetensors", "dtypes.safetensors", safetensors([
        ("f16", "F16", [2, 2], [1.0, -2.5, 65504.0, 6e-8]),
        ("bf16", "BF16", [3], [1.0, -3.0, 1e30]),
        ("f64", "F64", [2], [3.25, -1e300]),
        ("i32", "I32", [2], [-7, 2**31 - 1]),
        ("i64", "I64", [1, 2], [-(2**62), 5]),
        ("u8", "U8", [4], [0, 1, 127, 255]),
        ("bool", "BOOL", [2], [0, 1]),
        ("f6", "F6_E2M3", [4], [0x12, 0x34, 0x56]),
        ("empty", "F32", [0, 3], []),
        ("scalar", "F32", [], [0.5]),
    ], {"format": "pt", "ldmcl.state.graph_step": "12"}))
    out("safetensors", "empty.safetensors", safetensors([]))
    # what the library writes: F32 with metadata
    out("safetensors", "f32.safetensors", safetensors(
        [("weight", "F32", [2, 3], [0.5 * i for i in range(6)]), ("bias", "F32", [3], [1, 2, 3])],
        {"format": "pt", "ldmcl.cache.autoencoder_sha256": "ab" * 32}))


def seeds_latent_cache():
    n, z, h = 2, 3, 4
    lat = [((i * 37) % 17) / 8.0 - 1.0 for i in range(n * z * h * h)]
    flip = [-v for v in lat]
    meta = {"ldmcl.cache.autoencoder_sha256": "0f" * 32, "ldmcl.cache.dataset_sha256": "1e" * 32,
            "ldmcl.latent_count": str(n)}
    out("latent_cache", "flipped.safetensors", safetensors([
        ("latents", "F32", [n, z, h, h], lat), ("indices", "F32", [n], [0.0, 2.0]),
        ("latents_flipped", "F32", [n, z, h, h], flip)], meta))
    out("latent_cache", "plain.safetensors", safetensors([
        ("latents", "F32", [1, z, 2, 2], lat[:12]), ("indices", "F32", [1], [5.0])], meta))
    out("latent_cache", "f16.safetensors", safetensors([
        ("latents", "F16", [n, z, h, h], lat), ("indices", "F16", [n], [1.0, 0.0]),
        ("latents_flipped", "BF16", [n, z, h, h], flip)]))


# ---- PNG ---------------------------------------------------------------------------------------

def png(width, height, depth, color, rows, interlace=0, extra=()):
    """rows: the raw (filtered) scanlines as bytes, filter byte included; extra: chunks before
    IDAT."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, interlace)
    body = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    for kind, data in extra:
        body += chunk(kind, data)
    return body + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def seeds_png():
    out("png", "sample.png", repo("tests/ref/image_sample.png"))
    out("png", "gray1.png", png(9, 3, 1, 0, b"\x00\xa5\x80\x00\x5a\x00\x01\xff\x80"))
    out("png", "gray16.png", png(2, 2, 16, 0, b"\x00\x12\x34\xff\xff\x01\x00\x00\x01\x02",
                                 extra=[(b"gAMA", struct.pack(">I", 45455))]))
    out("png", "palette_trns.png", png(4, 2, 2, 3, b"\x00\x1b\x02\xe4",
                                      extra=[(b"PLTE", bytes(range(12))), (b"tRNS", b"\x00\x80")]))
    out("png", "rgba.png", png(2, 2, 8, 6, b"\x01" + bytes(range(8)) + b"\x02" + bytes(range(8)),
                               extra=[(b"tEXt", b"parameters\x00a cat")]))
    out("png", "gray_alpha.png", png(3, 1, 8, 4, b"\x04\x10\x20\x30\x40\x50\x60"))
    # Adam7: 3x3 RGB, passes 1 (1 px), 4 (1 px), 6 (1 px, 2 px? no) as libpng lays them out
    rows = b""
    for w, h in ((1, 1), (1, 1), (2, 1), (1, 2), (3, 1)):  # passes 1, 4, 5, 6, 7 of a 3x3 image
        rows += (b"\x00" + bytes(range(3 * w))) * h
    out("png", "interlaced.png", png(3, 3, 8, 2, rows, interlace=1))


# ---- JPEG --------------------------------------------------------------------------------------

def seeds_jpeg():
    sample = repo("tests/ref/image_sample.jpg")
    out("jpeg", "sample.jpg", sample)
    if not shutil.which("cjpeg") or not shutil.which("jpegtran"):
        print("make_seeds: no cjpeg/jpegtran (libjpeg-turbo-progs): JPEG variants skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        ppm = os.path.join(tmp, "in.ppm")
        pgm = os.path.join(tmp, "in.pgm")
        w, h = 11, 6
        with open(ppm, "wb") as f:
            f.write(b"P6 %d %d 255\n" % (w, h) +
                    bytes((x * 23 + y * 41 + c * 80) % 256
                          for y in range(h) for x in range(w) for c in range(3)))
        with open(pgm, "wb") as f:
            f.write(b"P5 %d %d 255\n" % (w, h) + bytes((x * 23 + y * 41) % 256
                                                      for y in range(h) for x in range(w)))

        def run(name, args, src):
            data = subprocess.run(args + [src], check=True, capture_output=True).stdout
            out("jpeg", name, data)

        run("gray.jpg", ["cjpeg", "-quality", "50"], pgm)
        run("rgb_components.jpg", ["cjpeg", "-rgb", "-quality", "40"], ppm)
        run("444_restart.jpg", ["cjpeg", "-sample", "1x1", "-restart", "1", "-quality", "30"], ppm)
        run("progressive.jpg", ["cjpeg", "-progressive", "-quality", "30"], ppm)
        run("arithmetic.jpg", ["cjpeg", "-arithmetic", "-quality", "30"], ppm)
        sample_path = os.path.join(tmp, "sample.jpg")
        with open(sample_path, "wb") as f:
            f.write(sample)
        run("sample_progressive.jpg", ["jpegtran", "-progressive"], sample_path)


# ---- text formats ------------------------------------------------------------------------------

TUNING = (b"ldmcl-gemm-tuning 1\n# pocl on cpu-x86-64, driver 3.1 (an example)\n"
          b"Xgemm GEMMK=0 KREG=1 KWG=16 KWI=2 MDIMA=8 MDIMC=8 MWG=32 NDIMB=8 NDIMC=8 NWG=32 SA=0 "
          b"SB=0 STRM=0 STRN=0 VWM=2 VWN=2\nGemmRoutine XGEMM_MIN_INDIRECT_SIZE=64\n")


def seeds_text():
    out("gemm_tuning", "tuning.txt", TUNING)
    out("gemm_tuning", "defaults.txt", b"# CLBlast's defaults measured fastest\n"
                                        b"ldmcl-gemm-tuning 1\r\n\n")
    out("gemm_tuning", "four.txt", TUNING + b"  XgemmDirect WGD=8 MDIMCD=8 NDIMCD=8\t\n"
                                            b"Copy COPY_DIMX=8 COPY_DIMY=8 COPY_WPT=1 COPY_VW=1\n")

    for name in ("fashion_mnist_smoke.ini", "celebhq_text_cond.ini", "fashion_mnist.ini"):
        out("run_config", name, repo("configs/" + name))
    out("run_config", "model.ini", repo("tests/ref/reference_model/model.ini"))
    out("run_config", "scaled.ini", b"""[dataset]
path = data
resolution = 32
channels = 3
random_flip = yes
caption_extension = .caption
[diffusion]
beta_schedule = cosine
prediction_type = v_prediction
[autoencoder]
kind = vae
z_channels = 4
down_channels = [8, 16]
mid_channels = [16, 16]
down_sample = [True]
attn_down = [False]
norm_channels = 4
num_heads = 2
latent_patch = 2
latent_scaling = channel
latent_mean = [0.5, -0.25, 0, 1e-3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
latent_std = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0.5]
[ldm]
down_channels = [16, 32]
mid_channels = [32, 16]
down_sample = [True]
attn_down = [False]
num_heads = 4
time_emb_dim = 32
norm_channels = 8
conv_out_channels = 16
[text]
encoder = none
[autoencoder_train]
num_train_epochs = 3
train_batch_size = 4
[train]
lr_scheduler = cosine
lr_warmup_steps = 10
num_train_epochs = 2
gradient_accumulation_steps = 2
resume_from_checkpoint = latest
use_ema = on
max_grad_norm = 1.0
snr_gamma = 5
noise_offset = 0.05
validation_prompts = "  a cat ; # not a comment | a dog  "
""")

    for name in ("fashion_mnist_smoke.ini", "celebhq_text_cond.ini"):
        out("ini", name, repo("configs/" + name))
    out("ini", "typed.ini", "\ufeff; every getter of fuzz_ini.c\n# comment\n\n[s]\nstr = \"  "
        "quoted ; # kept \"\nint = -42\nnum = 1.5e-3\nbool = Yes\nints = [1, 2, True, 16384]\n"
        "few = -5,5\nnums = [0.25, -1e30, 3]\n[t-1.x_y]\nkey.with-dots = caf\u00e9 \u6771\u4eac\n"
        .encode())

    clip = "tests/ref/reference_model/clip/"
    for name in ("tokenizer_config.json", "special_tokens_map.json", "config.json"):
        out("json", name, repo(clip + name))
    st = repo("tests/ref/reference_model_samples.safetensors")
    out("json", "header.json", st[8:8 + struct.unpack("<Q", st[:8])[0]].rstrip(b" "))
    out("json", "values.json", b'{"a": [1, -2.5e10, 0.0, 0, -0, 1E+2, true, false, null],\n'
        b' "\\u00e9\\ud83d\\ude00\\/\\b\\f\\n\\r\\t": "x\\"\\\\ \xc3\xa9 \xe6\x9d\xb1 \xf0\x9f\x98\x80",'
        b'\n "n": {"k": [[[{}]]], "": ""}, "big": 123456789012345678901,'
        b' "i64": -9223372036854775808}\n')
    vocab = json.loads(repo(clip + "vocab.json"))
    out("json", "vocab_excerpt.json",
        json.dumps(dict(list(vocab.items())[:40] + list(vocab.items())[-6:]), indent=1).encode())

    # the real BPE vocabulary's first lines (the header and the first merges), plain and gzip
    bpe_path = os.path.join(ROOT, "build", "data", "bpe_simple_vocab_16e6.txt.gz")
    if os.path.exists(bpe_path):
        with gzip.open(bpe_path, "rb") as f:
            lines = f.read().split(b"\n")
        out("clip_bpe", "excerpt.txt", b"\n".join(lines[:400]))
        out("clip_bpe", "excerpt.txt.gz", gzip.compress(b"\n".join(lines[:150]), 9, mtime=0))
    else:
        print("make_seeds: no build/data/bpe_simple_vocab_16e6.txt.gz: clip_bpe excerpts skipped")
    out("clip_bpe", "tiny.txt", b"#version: 0.2\nt h\nth e</w>\na n\no n</w>\nc a\nca t</w>")

    files = [repo(clip + n) for n in ("vocab.json", "merges.txt", "tokenizer_config.json",
                                       "special_tokens_map.json")]
    files[0] = json.dumps(vocab, separators=(",", ":"), ensure_ascii=False).encode()
    out("clip_dir", "reference.txt", SEP.join(files + [b"The cat's HAT, 42 <|endoftext|>"]))
    small = {"a": 0, "c": 1, "t": 2, "h": 3, "a</w>": 4, "t</w>": 5, "th": 6, "the</w>": 7,
             "ca": 8, "cat</w>": 9, "<|startoftext|>": 10, "<|endoftext|>": 11, "<pad>": 12}
    out("clip_dir", "pad_object.txt", SEP.join([
        json.dumps(small).encode(), b"#version: 0.2\nt h\nth e</w>\nc a\nca t</w>",
        b'{"model_max_length": 77}',
        b'{"pad_token": {"content": "<pad>", "lstrip": false}, "bos_token": "<|startoftext|>"}']))
    out("clip_dir", "no_config.txt", SEP.join([json.dumps(small).encode(), b"#version: 0.2\na t"]))

    prompts = {
        "plain.txt": b"a photo of a cat sitting on a red sofa",
        "specials.txt": b"<|startoftext|>the cat<|endoftext|> <|ENDOFTEXT|>x<|endoftext",
        "unicode.txt": "Caf\u00e9 na\u00efve \u6771\u4eac\u90fd \ud55c\uad6d\uc5b4 \u0645\u0631\u062d\u0628\u0627 "
                       "\U0001f600\U0001f431 \u212a\u017f \u00c5\u0301 \ufb01 \u2163".encode(),
        "punctuation.txt": b"it's they're I'LL we've he'd ... !!?? 1234567 3.14 a-b_c \"quoted\"",
        "whitespace.txt": b"\ttabs\r\nnew\x0bline\x0c\x00nul\x1f\x7f \xc2\xa0nbsp\xe2\x80\x83em",
        "long_word.txt": b"supercalifragilisticexpialidocious" * 6,
        "invalid.txt": b"valid then \xff\xfe bad \xc3",
    }
    for name, text in prompts.items():
        out("clip_tokenize", name, text)


# ---- dataset -----------------------------------------------------------------------------------

def seeds_dataset():
    img = repo("tests/ref/image_sample.png")
    jpg = repo("tests/ref/image_sample.jpg")
    gray = png(5, 3, 8, 0, b"".join(b"\x00" + bytes(range(i, i + 5)) for i in range(3)))
    out("dataset", "captioned.txt", SEP.join([b"", img, b"a photo of a cat\n\nanother caption\n",
                                              jpg, b"second image"]))
    out("dataset", "celeba.txt", SEP.join([b"celeba flip", jpg, b"a smiling woman\r\n", img]))
    out("dataset", "gray_sub.txt", SEP.join([b"gray flip", gray, b"one", img, gray,
                                             b"caf\xc3\xa9 \xff bad line\nok line\n", b"not an image"]))


# ---- training state ----------------------------------------------------------------------------

def seeds_train_state(build):
    exe = os.path.join(build, "tests", "fuzz", "fuzz_train_state")
    if not os.path.exists(exe):
        print("make_seeds: no %s: the training-state seed is skipped" % exe)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "state.safetensors")
        subprocess.run([exe], env=dict(os.environ, LDMCL_FUZZ_WRITE_SEED=path), check=True)
        with open(path, "rb") as f:
            out("train_state", "library.safetensors", f.read())
    long_name = ("ema.model.diffusion_model.output_blocks.11.1.transformer_blocks.0.attn1.to_out.0."
                 "lora.adapters.subject.up_projection.weight")  # fuzz_train_state.c: LONG_NAME
    params = [("w", "F32", [5], [0.1, 0.2, 0.3, 0.4, 0.5]),
              (long_name, "F16", [2, 3], [1, 2, 3, 4, 5, 6]),
              ("frozen", "BF16", [5], [2, 2, 2, 2, 2])]
    out("train_state", "params_only.safetensors",
        safetensors(params, {"ldmcl.state.graph_step": "7"}))


def seeds_sd_model():
    """A minimal SD 1.x single file (the shapes inspection reads, tiny) and a diffusers folder's
    configs (first byte: the layout, fuzz_sd_model.c)."""
    u, v, c = "model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer.text_model."
    z = lambda *shape: (lambda n: [0.0] * n)(__import__("math").prod(shape))
    t = lambda name, *shape: (name, "F16", list(shape), z(*shape))
    single = safetensors([
        t(u + "input_blocks.0.0.weight", 8, 4, 1, 1), t(u + "out.2.weight", 4, 8, 1, 1),
        t(u + "input_blocks.1.0.in_layers.2.weight", 8, 8, 1, 1),
        t(u + "input_blocks.1.1.norm.weight", 8), t(u + "input_blocks.2.0.op.weight", 8, 8, 1, 1),
        t(u + "input_blocks.3.0.in_layers.2.weight", 16, 8, 1, 1),
        t(u + "middle_block.1.transformer_blocks.0.attn2.to_k.weight", 16, 4),
        t(u + "middle_block.1.transformer_blocks.0.norm1.weight", 16),
        t(u + "middle_block.1.proj_in.weight", 16, 16, 1, 1),
        t(v + "encoder.conv_in.weight", 8, 3, 1, 1), t(v + "encoder.conv_out.weight", 8, 8, 1, 1),
        t(v + "quant_conv.weight", 8, 8, 1, 1), t(v + "decoder.conv_out.weight", 3, 8, 1, 1),
        t(v + "encoder.down.0.block.0.conv1.weight", 8, 8, 1, 1),
        t(c + "embeddings.token_embedding.weight", 5, 4),
        t(c + "embeddings.position_embedding.weight", 3, 4),
        t(c + "encoder.layers.0.mlp.fc1.weight", 6, 4)],
        metadata={"ldmcl.sd_config": '{"unet": {"num_heads": 2, "norm_groups": 4}, '
                  '"vae": {"norm_groups": 4}, "text": {"num_heads": 1}}'})
    out("sd_model", "single.bin", b"\x00" + single)
    folder = SEP.join([
        repo("tests/ref/sd/sd1_diffusers/unet/config.json"),
        repo("tests/ref/sd/sd1_diffusers/vae/config.json"),
        repo("tests/ref/sd/sd1_diffusers/text_encoder/config.json"),
        repo("tests/ref/sd/sd1_diffusers/scheduler/scheduler_config.json"),
        safetensors([("conv_in.weight", "F16", [2], [0.0, 1.0])])])
    out("sd_model", "diffusers.bin", b"\x01" + folder)


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build-fuzz")
    seeds_safetensors()
    seeds_latent_cache()
    seeds_png()
    seeds_jpeg()
    seeds_text()
    seeds_dataset()
    seeds_train_state(build)
    seeds_sd_model()


if __name__ == "__main__":
    main()

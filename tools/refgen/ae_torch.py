"""tools/refgen/ae_torch.py: PyTorch implementations of the reference's autoencoders (VQ-VAE and
KL-VAE), its PatchGAN discriminator, LPIPS over a VGG16-shaped feature stack of any widths, and
one step of its autoencoder training (train_vqvae.py's losses), written from
../shared/design/REFERENCE.md sections 2-3 with the reference's module names, so that state_dict
keys are the reference's. Used by make_refs.py for the autoencoder parity references."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from unet_torch import Down, Layers, Mid


class AEUp(Layers):
    """The autoencoder's UpBlock: transposed conv on all incoming channels first, no skip,
    attention only where attn_down says."""

    def __init__(self, cin, cout, up_sample, heads, n, attn, groups):
        super().__init__(n, n, cin, cout, None, groups, heads, attn, 0)
        self.attn = attn
        self.up_sample_conv = nn.ConvTranspose2d(cin, cin, 4, 2, 1) if up_sample else nn.Identity()

    def forward(self, x):
        x = self.up_sample_conv(x)
        for i in range(len(self.resnet_conv_first)):
            x = self.resnet(i, x, None)
            if self.attn:
                x = self.self_attention(i, x)
        return x


class Autoencoder(nn.Module):
    """cfg: the reference's autoencoder_params keys plus im_channels and kind ('vqvae' | 'vae')."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        dc, mc, g, h = cfg["down_channels"], cfg["mid_channels"], cfg["norm_channels"], cfg["num_heads"]
        z, vae = cfg["z_channels"], cfg["kind"] == "vae"
        self.encoder_conv_in = nn.Conv2d(cfg["im_channels"], dc[0], 3, padding=1)
        self.encoder_layers = nn.ModuleList(
            [Down(dc[i], dc[i + 1], None, cfg["down_sample"][i], h, cfg["num_down_layers"],
                  cfg["attn_down"][i], g, 0) for i in range(len(dc) - 1)])
        self.encoder_mids = nn.ModuleList(
            [Mid(mc[i], mc[i + 1], None, h, cfg["num_mid_layers"], g, 0)
             for i in range(len(mc) - 1)])
        self.encoder_norm_out = nn.GroupNorm(g, dc[-1])
        zc = 2 * z if vae else z
        self.encoder_conv_out = nn.Conv2d(dc[-1], zc, 3, padding=1)
        self.pre_quant_conv = nn.Conv2d(zc, zc, 1)
        if not vae:
            self.embedding = nn.Embedding(cfg["codebook_size"], z)
        self.post_quant_conv = nn.Conv2d(z, z, 1)
        self.decoder_conv_in = nn.Conv2d(z, mc[-1], 3, padding=1)
        self.decoder_mids = nn.ModuleList(
            [Mid(mc[i], mc[i - 1], None, h, cfg["num_mid_layers"], g, 0)
             for i in reversed(range(1, len(mc)))])
        self.decoder_layers = nn.ModuleList(
            [AEUp(dc[i], dc[i - 1], cfg["down_sample"][i - 1], h, cfg["num_up_layers"],
                  cfg["attn_down"][i - 1], g) for i in reversed(range(1, len(dc)))])
        self.decoder_norm_out = nn.GroupNorm(g, dc[0])
        self.decoder_conv_out = nn.Conv2d(dc[0], cfg["im_channels"], 3, padding=1)

    def encoder(self, x):
        out = self.encoder_conv_in(x)
        for down in self.encoder_layers:
            out = down(out, None, None)
        for mid in self.encoder_mids:
            out = mid(out, None, None)
        out = self.encoder_conv_out(F.silu(self.encoder_norm_out(out)))
        return self.pre_quant_conv(out)

    def quantize(self, z):
        """Nearest codebook entry (L2), the two losses, the straight-through latent; also the
        smallest gap between the best and second-best squared distances (argmin's margin)."""
        n, c, h, w = z.shape
        rows = z.permute(0, 2, 3, 1).reshape(-1, c)
        d2 = ((rows[:, None, :] - self.embedding.weight[None, :, :]) ** 2).sum(-1)
        idx = d2.argmin(-1)
        top2 = d2.topk(min(2, d2.shape[1]), largest=False).values
        margin = (top2[:, 1] - top2[:, 0]).min().item() if d2.shape[1] > 1 else float("inf")
        q = self.embedding.weight[idx]
        commitment = torch.mean((q.detach() - rows) ** 2)
        codebook = torch.mean((q - rows.detach()) ** 2)
        st = rows + (q - rows).detach()
        latent = st.reshape(n, h, w, c).permute(0, 3, 1, 2)
        return latent, codebook, commitment, idx.reshape(n, h, w), margin

    def encode(self, x, noise=None):
        z = self.encoder(x)
        if self.cfg["kind"] == "vae":
            mean, logvar = torch.chunk(z, 2, dim=1)
            kl = 0.5 * torch.sum(mean ** 2 + torch.exp(logvar) - 1 - logvar) / x.shape[0]
            latent = mean + torch.exp(0.5 * logvar) * noise if noise is not None else mean
            return latent, {"kl": kl}
        latent, codebook, commitment, idx, margin = self.quantize(z)
        return latent, {"codebook": codebook, "commitment": commitment, "indices": idx,
                        "margin": margin}

    def decode(self, z):
        out = self.decoder_conv_in(self.post_quant_conv(z))
        for mid in self.decoder_mids:
            out = mid(out, None, None)
        for up in self.decoder_layers:
            out = up(out)
        return self.decoder_conv_out(F.silu(self.decoder_norm_out(out)))


class Discriminator(nn.Module):
    """PatchGAN: 4x4 convs at strides 2, ..., 2, 1; BatchNorm on the middle layers."""

    def __init__(self, im_channels, conv_channels=(64, 128, 256)):
        super().__init__()
        dims = [im_channels] + list(conv_channels) + [1]
        n = len(dims) - 1
        self.layers = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(dims[i], dims[i + 1], 4, 2 if i < n - 1 else 1, 1, bias=(i == 0)),
                nn.BatchNorm2d(dims[i + 1]) if 0 < i < n - 1 else nn.Identity(),
                nn.LeakyReLU(0.2) if i < n - 1 else nn.Identity())
            for i in range(n)])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class LPIPS(nn.Module):
    """LPIPS v0.1 'vgg' with VGG16's layout (torchvision feature indices as module names) and the
    given stage widths; frozen, in eval mode (dropout off)."""
    STAGES = [[0, 2], [5, 7], [10, 12, 14], [17, 19, 21], [24, 26, 28]]

    def __init__(self, widths=(64, 128, 256, 512, 512)):
        super().__init__()
        self.register_buffer("shift", torch.tensor([-.030, -.088, -.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([.458, .448, .450])[None, :, None, None])
        self.net = nn.Module()
        cin = 3
        for s, convs in enumerate(self.STAGES):
            seq = nn.Sequential()
            first = convs[0] - (1 if s else 0)  # a stage starts with its pool (index - 1)
            for k in range(first, convs[-1] + 2):
                if k in convs:
                    seq.add_module(str(k), nn.Conv2d(cin, widths[s], 3, padding=1))
                    cin = widths[s]
                elif k == first and s:
                    seq.add_module(str(k), nn.MaxPool2d(2, 2))
                else:
                    seq.add_module(str(k), nn.ReLU())
            setattr(self.net, f"slice{s + 1}", seq)
        for s in range(5):  # NetLinLayer: .model = Sequential(Dropout, 1x1 conv without bias)
            lin = nn.Module()
            lin.model = nn.Sequential(nn.Dropout(), nn.Conv2d(widths[s], 1, 1, bias=False))
            setattr(self, f"lin{s}", lin)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def features(self, x):
        h, out = (x - self.shift.to(x.dtype)) / self.scale.to(x.dtype), []
        for s in range(5):
            h = getattr(self.net, f"slice{s + 1}")(h)
            out.append(h)
        return out

    def forward(self, a, b):
        fa, fb, val = self.features(a), self.features(b), 0
        for s in range(5):
            d = (F.normalize(fa[s], dim=1) - F.normalize(fb[s], dim=1)) ** 2
            val = val + getattr(self, f"lin{s}").model(d).mean([2, 3], keepdim=True)
        return val


def generator_loss(ae, disc, lpips, im, cfg, noise=None):
    """train_vqvae.py's generator loss (divided by autoencoder_acc_steps), with the adversarial term
    (the step is past disc_start). Returns the loss, its terms (undivided) and the output."""
    acc = cfg["acc_steps"]
    latent, q = ae.encode(im, noise)
    out = ae.decode(latent)
    terms = {"recon": F.mse_loss(out, im)}
    g = terms["recon"]
    if "kl" in q:
        terms["kl"] = q["kl"]
        g = g + cfg["kl_weight"] * q["kl"]
    else:
        terms["codebook"], terms["commitment"] = q["codebook"], q["commitment"]
        g = g + cfg["codebook_weight"] * q["codebook"] + cfg["commitment_beta"] * q["commitment"]
    fake = disc(out)
    terms["g_adv"] = F.mse_loss(fake, torch.ones_like(fake))
    g = g + cfg["disc_weight"] * terms["g_adv"]
    terms["perceptual"] = torch.mean(lpips(out, im))
    g = g + cfg["perceptual_weight"] * terms["perceptual"]
    return g / acc, terms, out, q


def discriminator_loss(disc, out, im, cfg):
    """disc_weight * (mse(D(fake), 0) + mse(D(real), 1)) / 2 / acc, fake first."""
    fake, real = disc(out.detach()), disc(im)
    d_fake = F.mse_loss(fake, torch.zeros_like(fake))
    d_real = F.mse_loss(real, torch.ones_like(real))
    return cfg["disc_weight"] * (d_fake + d_real) / 2 / cfg["acc_steps"], {"d_fake": d_fake,
                                                                          "d_real": d_real}

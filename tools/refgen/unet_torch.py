"""tools/refgen/unet_torch.py: a PyTorch implementation of the reference's conditional UNet,
written from ../shared/design/REFERENCE.md section 3 (not copied from the reference repository),
with the same module names so its state_dict keys are the reference's. Used by make_refs.py to
produce the UNet parity references."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def time_embedding(t, dim):
    """Sines first, factor_i = 10000^(i / (dim/2)); t as integers."""
    half = dim // 2
    factor = 10000 ** (torch.arange(half, dtype=torch.float64, device=t.device) / half)
    e = t.long().to(torch.float64)[:, None] / factor
    return torch.cat([torch.sin(e), torch.cos(e)], dim=-1)


def norm_silu_conv(groups, cin, cout):
    return nn.Sequential(nn.GroupNorm(groups, cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, 1, 1))


class Layers(nn.Module):
    """The ModuleLists of one block: resnets (with a time embedding unless temb is None), self-
    and cross-attention."""

    def __init__(self, n_res, n_attn, cin, cout, temb, groups, heads, self_attn, ctx_dim):
        super().__init__()
        ch = [cin] + [cout] * (n_res - 1)
        self.resnet_conv_first = nn.ModuleList([norm_silu_conv(groups, c, cout) for c in ch])
        if temb:
            self.t_emb_layers = nn.ModuleList(
                [nn.Sequential(nn.SiLU(), nn.Linear(temb, cout)) for _ in ch])
        self.resnet_conv_second = nn.ModuleList([norm_silu_conv(groups, cout, cout) for _ in ch])
        if self_attn:
            self.attention_norms = nn.ModuleList([nn.GroupNorm(groups, cout) for _ in range(n_attn)])
            self.attentions = nn.ModuleList(
                [nn.MultiheadAttention(cout, heads, batch_first=True) for _ in range(n_attn)])
        if ctx_dim:
            self.cross_attention_norms = nn.ModuleList(
                [nn.GroupNorm(groups, cout) for _ in range(n_attn)])
            self.cross_attentions = nn.ModuleList(
                [nn.MultiheadAttention(cout, heads, batch_first=True) for _ in range(n_attn)])
            self.context_proj = nn.ModuleList([nn.Linear(ctx_dim, cout) for _ in range(n_attn)])
        self.residual_input_conv = nn.ModuleList([nn.Conv2d(c, cout, 1) for c in ch])

    def resnet(self, i, x, t_emb):
        h = self.resnet_conv_first[i](x)
        if t_emb is not None:
            h = h + self.t_emb_layers[i](t_emb)[:, :, None, None]
        return self.resnet_conv_second[i](h) + self.residual_input_conv[i](x)

    @staticmethod
    def _attend(norm, attn, x, context):
        n, c, h, w = x.shape
        a = norm(x.reshape(n, c, h * w)).transpose(1, 2)
        kv = a if context is None else context
        a, _ = attn(a, kv, kv)
        return x + a.transpose(1, 2).reshape(n, c, h, w)

    def self_attention(self, i, x):
        return self._attend(self.attention_norms[i], self.attentions[i], x, None)

    def cross_attention(self, i, x, context):
        return self._attend(self.cross_attention_norms[i], self.cross_attentions[i], x,
                            self.context_proj[i](context))


class Down(Layers):
    def __init__(self, cin, cout, temb, down_sample, heads, n, attn, groups, ctx_dim):
        super().__init__(n, n, cin, cout, temb, groups, heads, attn, ctx_dim)
        self.attn, self.ctx = attn, ctx_dim
        self.down_sample_conv = nn.Conv2d(cout, cout, 4, 2, 1) if down_sample else nn.Identity()

    def forward(self, x, t_emb, context):
        for i in range(len(self.resnet_conv_first)):
            x = self.resnet(i, x, t_emb)
            if self.attn:
                x = self.self_attention(i, x)
            if self.ctx:
                x = self.cross_attention(i, x, context)
        return self.down_sample_conv(x)


class Mid(Layers):
    def __init__(self, cin, cout, temb, heads, n, groups, ctx_dim):
        super().__init__(n + 1, n, cin, cout, temb, groups, heads, True, ctx_dim)
        self.ctx = ctx_dim

    def forward(self, x, t_emb, context):
        x = self.resnet(0, x, t_emb)
        for i in range(len(self.attentions)):
            x = self.self_attention(i, x)
            if self.ctx:
                x = self.cross_attention(i, x, context)
            x = self.resnet(i + 1, x, t_emb)
        return x


class Up(Layers):
    def __init__(self, cin, cout, temb, up_sample, heads, n, groups, ctx_dim):
        super().__init__(n, n, cin, cout, temb, groups, heads, True, ctx_dim)
        self.ctx = ctx_dim
        self.up_sample_conv = (nn.ConvTranspose2d(cin // 2, cin // 2, 4, 2, 1) if up_sample
                               else nn.Identity())

    def forward(self, x, skip, t_emb, context):
        x = torch.cat([self.up_sample_conv(x), skip], dim=1)
        for i in range(len(self.resnet_conv_first)):
            x = self.self_attention(i, self.resnet(i, x, t_emb))
            if self.ctx:
                x = self.cross_attention(i, x, context)
        return x


class UNet(nn.Module):
    """cfg: a dict with the reference's ldm_params keys plus im_channels and, for conditioning,
    text_embed_dim, num_classes, image_cond_input_channels / image_cond_output_channels."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        dc, mc, temb = cfg["down_channels"], cfg["mid_channels"], cfg["time_emb_dim"]
        g, heads, ctx = cfg["norm_channels"], cfg["num_heads"], cfg.get("text_embed_dim", 0)
        if cfg.get("num_classes"):
            self.class_emb = nn.Embedding(cfg["num_classes"], temb)
        if cfg.get("image_cond_input_channels"):
            self.cond_conv_in = nn.Conv2d(cfg["image_cond_input_channels"],
                                          cfg["image_cond_output_channels"], 1, bias=False)
            self.conv_in_concat = nn.Conv2d(cfg["im_channels"] + cfg["image_cond_output_channels"],
                                            dc[0], 3, padding=1)
        else:
            self.conv_in = nn.Conv2d(cfg["im_channels"], dc[0], 3, padding=1)
        self.t_proj = nn.Sequential(nn.Linear(temb, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.downs = nn.ModuleList(
            [Down(dc[i], dc[i + 1], temb, cfg["down_sample"][i], heads, cfg["num_down_layers"],
                  cfg["attn_down"][i], g, ctx) for i in range(len(dc) - 1)])
        self.mids = nn.ModuleList(
            [Mid(mc[i], mc[i + 1], temb, heads, cfg["num_mid_layers"], g, ctx)
             for i in range(len(mc) - 1)])
        self.ups = nn.ModuleList(
            [Up(dc[i] * 2, dc[i - 1] if i else cfg["conv_out_channels"], temb,
                cfg["down_sample"][i], heads, cfg["num_up_layers"], g, ctx)
             for i in reversed(range(len(dc) - 1))])
        self.norm_out = nn.GroupNorm(g, cfg["conv_out_channels"])
        self.conv_out = nn.Conv2d(cfg["conv_out_channels"], cfg["im_channels"], 3, padding=1)

    def forward(self, x, t, context=None, class_onehot=None, mask=None):
        if mask is not None:
            m = self.cond_conv_in(F.interpolate(mask, size=x.shape[-2:]))
            out = self.conv_in_concat(torch.cat([x, m], dim=1))
        else:
            out = self.conv_in(x)
        t_emb = self.t_proj(time_embedding(t, self.cfg["time_emb_dim"]).to(x.dtype))
        if class_onehot is not None:
            t_emb = t_emb + class_onehot @ self.class_emb.weight
        skips = []
        for down in self.downs:
            skips.append(out)
            out = down(out, t_emb, context)
        for mid in self.mids:
            out = mid(out, t_emb, context)
        for up in self.ups:
            out = up(out, skips.pop(), t_emb, context)
        return self.conv_out(F.silu(self.norm_out(out)))

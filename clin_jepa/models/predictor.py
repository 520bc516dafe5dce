"""Action-conditioned block-causal predictor (METHOD 4) with a key/value-cached rollout.

For a window of T hours the token sequence is

    [d, s_0, a_0, s_1, a_1, ..., s_{T-1}, a_{T-1}]          length 2T+1

d = demographics latent, s_k = state latent of hour k, a_k = action latent of hour k.
Each token gets its own linear input projection (latent -> width), a token-type
embedding and (states/actions only) a learned hour embedding. Attention is
block-causal: d sees itself; the pair (s_k, a_k) sees d, each other and every earlier
pair. The output at s_k predicts the latent of hour k+1 (the a_k output is unused).

Because attention is block-causal, the keys/values of block k depend only on blocks
<= k, so a rollout appends one block (2 tokens) per step to a KVCache instead of
re-running the prefix. Keys carry no positional rotation (hours enter through the
input embedding), so cached keys never need re-indexing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clin_jepa.config import PredictorConfig

TYPE_DEMO, TYPE_STATE, TYPE_ACTION = 0, 1, 2

# Named model sizes. Nonzero PredictorConfig fields override these; see resolve_config.
FLAVORS: dict[str, Callable[[], PredictorConfig]] = {
    # tiny, for CPU tests; latent = the debug encoder's hidden size
    "debug": lambda: PredictorConfig(flavor="debug", latent_dim=64, width=64, layers=2, heads=4, ffn=256,
                                     dropout_ffn=0.15, dropout_attn=0.10, max_steps=72),
    # the paper's predictor: 92.44M parameters with latent 4096 (Qwen3-8B hidden size)
    "paper": lambda: PredictorConfig(flavor="paper", latent_dim=4096, width=1024, layers=6, heads=8,
                                     ffn=4096, dropout_ffn=0.15, dropout_attn=0.10, max_steps=72),
}


def resolve_config(flavor: str | None = None, cfg: PredictorConfig | None = None,
                   latent_dim: int | None = None) -> PredictorConfig:
    """Flavor defaults <- nonzero ``cfg`` fields (dropout: >= 0) <- ``latent_dim``; validated."""
    flavor = flavor or (cfg.flavor if cfg is not None else "debug")
    if flavor not in FLAVORS:
        raise ValueError(f"unknown predictor flavor {flavor!r}; set predictor.flavor to one of {sorted(FLAVORS)}")
    out = FLAVORS[flavor]()
    if cfg is not None:
        for f in dataclasses.fields(cfg):
            v = getattr(cfg, f.name)
            is_set = v >= 0 if f.name.startswith("dropout") else bool(v)
            if f.name != "flavor" and is_set:
                setattr(out, f.name, v)
    if latent_dim:
        out.latent_dim = int(latent_dim)
    for name in ("latent_dim", "width", "layers", "heads", "ffn", "max_steps"):
        if getattr(out, name) <= 0:
            raise ValueError(f"predictor.{name}={getattr(out, name)} must be > 0 (or 0 for the flavor default)")
    if out.width % out.heads:
        raise ValueError(f"predictor.width={out.width} must be divisible by predictor.heads={out.heads}")
    for name in ("dropout_ffn", "dropout_attn"):
        if not 0.0 <= getattr(out, name) < 1.0:
            raise ValueError(f"predictor.{name}={getattr(out, name)} must be in [0, 1) (or < 0 for the flavor default)")
    return out


@dataclasses.dataclass
class KVCache:
    """Per-layer keys/values of the tokens seen so far, with each token's hour and validity."""

    kv: list[tuple[Tensor, Tensor]]  # per layer (k, v), each (B, nh, P, hd)
    valid: Tensor  # (B, P) bool: padded or superseded tokens are False
    hour: Tensor  # (B, P) long: d = -1, s_k = a_k = k

    def __len__(self) -> int:
        return self.valid.shape[1]


# ---------------------------------------------------------------------- #
# transformer block
# ---------------------------------------------------------------------- #


class Attention(nn.Module):
    def __init__(self, cfg: PredictorConfig):
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.width)
        self.dropout = cfg.dropout_attn

    def forward(self, x: Tensor, mask: Tensor, past: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x (B, L, W), mask (B, 1, L, P+L) bool (True = attend), past (k, v) each (B, nh, P, hd)."""
        B, L, W = x.shape
        q, k, v = self.qkv(x).split(W, dim=-1)
        q, k, v = (t.view(B, L, self.heads, W // self.heads).transpose(1, 2) for t in (q, k, v))  # (B, nh, L, hd)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, nh, P+L, hd)
            v = torch.cat([past[1], v], dim=2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, L, W)  # (B, L, W)
        return self.proj(y), (k, v)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)); x + ffn(ln(x))."""

    def __init__(self, cfg: PredictorConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.width)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.width)
        self.fc1 = nn.Linear(cfg.width, cfg.ffn)
        self.fc2 = nn.Linear(cfg.ffn, cfg.width)
        self.drop = nn.Dropout(cfg.dropout_ffn)

    def forward(self, x: Tensor, mask: Tensor, past: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        a, kv = self.attn(self.ln1(x), mask, past)
        x = x + a
        x = x + self.drop(self.fc2(F.gelu(self.fc1(self.ln2(x)))))
        return x, kv


# ---------------------------------------------------------------------- #
# the predictor
# ---------------------------------------------------------------------- #


class Predictor(nn.Module):
    def __init__(self, cfg: PredictorConfig):
        super().__init__()
        self.config = cfg
        D, W = cfg.latent_dim, cfg.width
        self.in_demo = nn.Linear(D, W)
        self.in_state = nn.Linear(D, W)
        self.in_action = nn.Linear(D, W)
        self.time_emb = nn.Embedding(cfg.max_steps, W)  # hour index within the window
        self.type_emb = nn.Embedding(3, W)  # demo / state / action
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(W)
        self.out = nn.Linear(W, D)
        self.apply(self._init_weights)
        for blk in self.blocks:  # GPT-2: scale residual projections by depth
            for lin in (blk.attn.proj, blk.fc2):
                nn.init.normal_(lin.weight, std=0.02 / math.sqrt(2 * cfg.layers))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ #
    def _check(self, name: str, x: Tensor, ndim: int) -> None:
        if x.ndim != ndim or x.shape[-1] != self.latent_dim:
            raise ValueError(
                f"predictor input {name} has shape {tuple(x.shape)}; expected {ndim} dims ending in "
                f"latent_dim={self.latent_dim}. Build the predictor with latent_dim=encoder.hidden_size.")

    def _pair_tokens(self, s: Tensor, a: Tensor, t: Tensor) -> Tensor:
        """s, a (B, T, D), t (B, T) hour index -> interleaved tokens (B, 2T, W)."""
        B, T, _ = s.shape
        te = self.time_emb(t)  # (B, T, W)
        s_tok = self.in_state(s) + te + self.type_emb.weight[TYPE_STATE]
        a_tok = self.in_action(a) + te + self.type_emb.weight[TYPE_ACTION]
        return torch.stack([s_tok, a_tok], dim=2).reshape(B, 2 * T, -1)  # (B, 2T, W)

    def _run(self, x: Tensor, mask: Tensor, cache: KVCache | None) -> tuple[Tensor, list]:
        kvs = []
        for i, blk in enumerate(self.blocks):
            x, kv = blk(x, mask, None if cache is None else cache.kv[i])
            kvs.append(kv)
        return self.ln_f(x), kvs

    def forward(self, d: Tensor, s: Tensor, a: Tensor, mask: Tensor | None = None,
                rollout_from: Tensor | None = None, rollout_steps: int = 0,
                return_cache: bool = False) -> Tensor | tuple[Tensor, ...]:
        """d (B, D), s/a (B, T, D), mask (B, T) bool -> out (B, T, D); out[:, k] predicts hour k+1.

        Padded hours (mask False) are never attended to and their outputs are zero.
        ``rollout_from`` (B,) hours k: also return the chained rollout (B, rollout_steps, D) for
        hours k+1..k+R, fed back with the real actions a[:, k+1..]; it reuses this pass's keys and
        values (one new block per step) and runs inside forward, so DDP/FSDP wrappers see it.
        ``return_cache``: also return the KVCache of the whole sequence (last element).
        """
        self._check("d", d, 2)
        self._check("s", s, 3)
        self._check("a", a, 3)
        B, T, _ = s.shape
        if a.shape[:2] != (B, T) or d.shape[0] != B:
            raise ValueError(f"predictor inputs disagree: d {tuple(d.shape)}, s {tuple(s.shape)}, a {tuple(a.shape)}; "
                             "s and a must both be (B, T, D) and d (B, D)")
        if T > self.config.max_steps:
            raise ValueError(f"window of {T} hours exceeds predictor.max_steps={self.config.max_steps}; "
                             "raise predictor.max_steps or shorten data.window_hours")
        if mask is None:
            mask = torch.ones(B, T, dtype=torch.bool, device=s.device)
        if mask.shape != (B, T) or mask.dtype != torch.bool:
            raise ValueError(f"predictor mask must be bool (B, T) = {(B, T)}, got {mask.dtype} {tuple(mask.shape)}")
        hours = torch.arange(T, device=s.device).expand(B, T)  # (B, T)
        d_tok = self.in_demo(d) + self.type_emb.weight[TYPE_DEMO]  # (B, W)
        x = torch.cat([d_tok[:, None], self._pair_tokens(s, a, hours)], dim=1)  # (B, 2T+1, W)
        # token hour: d = -1, s_k = a_k = k; key j visible to query i iff hour_j <= hour_i
        tok_hour = torch.cat([hours.new_full((B, 1), -1), hours.repeat_interleave(2, dim=1)], dim=1)  # (B, 2T+1)
        tok_valid = torch.cat([mask.new_ones(B, 1), mask.repeat_interleave(2, dim=1)], dim=1)  # (B, 2T+1)
        attn = (tok_hour[:, None, :] <= tok_hour[:, :, None]) & tok_valid[:, None, :]  # (B, 2T+1, 2T+1)
        h, kvs = self._run(x, attn[:, None], None)  # (B, 2T+1, W)
        out = self.out(h[:, 1::2])  # state tokens -> (B, T, D)
        out = out.masked_fill(~mask[..., None], 0.0)
        cache = KVCache(kv=kvs, valid=tok_valid, hour=tok_hour)
        result: tuple[Tensor, ...] = (out,)
        if rollout_from is not None:
            result += (self._chain(out, cache, a, rollout_from, rollout_steps),)
        if return_cache:
            result += (cache,)
        return result[0] if len(result) == 1 else result

    def _chain(self, out: Tensor, cache: KVCache, a: Tensor, start: Tensor, steps: int) -> Tensor:
        """Predictions for hours start+1..start+steps (B, steps, D), own outputs fed back."""
        B, T, _ = out.shape
        start = start.to(device=out.device, dtype=torch.long)
        if start.shape != (B,) or steps < 1 or int(start.min()) < 0 or int(start.max()) + steps > T:
            raise ValueError(f"rollout_from must be (B,) = ({B},) hours with rollout_from + rollout_steps "
                             f"({steps} >= 1) <= T = {T}: the fed-back hours need real actions")
        rows = torch.arange(B, device=out.device)
        z = out[rows, start]  # (B, D) prediction for hour k+1
        preds = [z]
        for j in range(1, steps):
            hour = start + j
            z, cache = self._step(cache, z, a[rows, hour], hour)  # hours checked above
            preds.append(z)
        return torch.stack(preds, dim=1)  # (B, steps, D)

    def step(self, cache: KVCache, s_new: Tensor, a_new: Tensor, hour: Tensor) -> tuple[Tensor, KVCache]:
        """Append one block (s_new, a_new) (B, D) at ``hour`` (B,) -> (prediction for hour+1 (B, D), cache).

        The new pair attends to the cache's valid keys with hour < ``hour`` and to itself; cached
        keys at hours >= ``hour`` (e.g. the true future of a teacher-forced pass) are invalidated.
        """
        if int(hour.max()) >= self.config.max_steps:
            raise ValueError(f"rollout reaches hour {int(hour.max())} >= predictor.max_steps={self.config.max_steps}; "
                             "raise predictor.max_steps or shorten the context/horizon")
        return self._step(cache, s_new, a_new, hour)

    def _step(self, cache: KVCache, s_new: Tensor, a_new: Tensor, hour: Tensor) -> tuple[Tensor, KVCache]:
        B = s_new.shape[0]
        x = self._pair_tokens(s_new[:, None], a_new[:, None], hour[:, None])  # (B, 2, W)
        new_hour = hour[:, None].expand(B, 2)  # (B, 2)
        keys_valid = torch.cat([cache.valid & (cache.hour < hour[:, None]),
                                cache.valid.new_ones(B, 2)], dim=1)  # (B, P+2)
        attn = keys_valid[:, None, None, :].expand(B, 1, 2, keys_valid.shape[1])  # (B, 1, 2, P+2)
        h, kvs = self._run(x, attn, cache)  # (B, 2, W)
        z = self.out(h[:, 0])  # (B, D)
        new = KVCache(kv=kvs, valid=keys_valid, hour=torch.cat([cache.hour, new_hour], dim=1))
        return z, new

    # ------------------------------------------------------------------ #
    def rollout(self, d: Tensor, s_ctx: Tensor, a: Tensor, horizon: int, use_cache: bool = True,
                ctx_lengths: Tensor | None = None) -> Tensor:
        """Autoregressive rollout -> (B, H, D); z_hat[:, h] predicts hour C_b + h.

        d (B, D); s_ctx (B, C, D) context states (sample b uses its first C_b = ctx_lengths[b]
        hours, default C); a (B, >= C+H-1, D) the REAL actions by hour. Each predicted state is
        fed back with the real action of its hour. ``use_cache=False`` recomputes the whole
        prefix every step (reference). Differentiable when called with grad enabled.
        """
        B, C, _ = s_ctx.shape
        H = int(horizon)
        if H < 1:
            raise ValueError(f"rollout horizon={horizon} must be >= 1")
        if a.ndim != 3 or a.shape[0] != B or a.shape[1] < C + H - 1:
            raise ValueError(f"rollout actions have shape {tuple(a.shape)}; need (B={B}, >= C+H-1={C + H - 1}, D): "
                             "pass the real actions of the context and of every rolled-out hour")
        if C + H - 1 > self.config.max_steps:
            raise ValueError(f"context {C} + horizon {H} - 1 = {C + H - 1} hours exceeds predictor.max_steps="
                             f"{self.config.max_steps}; raise predictor.max_steps (trained embeddings cover it) "
                             "or shorten the context/horizon")
        if ctx_lengths is None:
            ctx_lengths = torch.full((B,), C, dtype=torch.long, device=s_ctx.device)
        ctx_lengths = ctx_lengths.to(device=s_ctx.device, dtype=torch.long)
        if ctx_lengths.shape != (B,) or int(ctx_lengths.min()) < 1 or int(ctx_lengths.max()) > C:
            raise ValueError(f"ctx_lengths must be (B,) = ({B},) with values in [1, {C}]")
        rows = torch.arange(B, device=s_ctx.device)
        if not use_cache:
            return self._rollout_recompute(d, s_ctx, a, H, ctx_lengths)
        ctx_mask = torch.arange(C, device=s_ctx.device)[None, :] < ctx_lengths[:, None]  # (B, C)
        out, cache = self(d, s_ctx, a[:, :C], ctx_mask, return_cache=True)
        z = out[rows, ctx_lengths - 1]  # (B, D) prediction for hour C_b
        preds = [z]
        for h in range(1, H):
            hour = ctx_lengths + h - 1  # hour of the fed-back state
            z, cache = self._step(cache, z, a[rows, hour], hour)  # hours checked above
            preds.append(z)
        return torch.stack(preds, dim=1)  # (B, H, D)

    def _rollout_recompute(self, d: Tensor, s_ctx: Tensor, a: Tensor, H: int, ctx_lengths: Tensor) -> Tensor:
        B, C, D = s_ctx.shape
        rows = torch.arange(B, device=s_ctx.device)
        pos = torch.arange(C + H - 1, device=s_ctx.device)  # (L,)
        s_seq = torch.cat([s_ctx, s_ctx.new_zeros(B, H - 1, D)], dim=1)  # (B, C+H-1, D)
        preds = []
        for h in range(H):
            L = C + h
            mask = pos[None, :L] < (ctx_lengths + h)[:, None]  # (B, L)
            z = self(d, s_seq[:, :L], a[:, :L], mask)[rows, ctx_lengths + h - 1]  # (B, D)
            preds.append(z)
            if h < H - 1:  # write z at hour C_b + h (out of place: keeps autograd intact)
                at = (pos[None, :] == (ctx_lengths + h)[:, None])[..., None]  # (B, C+H-1, 1)
                s_seq = torch.where(at, z[:, None, :], s_seq)
        return torch.stack(preds, dim=1)  # (B, H, D)


def build_predictor(flavor: str | None = None, cfg: PredictorConfig | None = None,
                    latent_dim: int | None = None) -> Predictor:
    """A :class:`Predictor` of a named flavor; nonzero ``cfg`` fields and ``latent_dim`` override it.

    Builds on the current default device (``with torch.device("meta"):`` for a free size check).
    """
    return Predictor(resolve_config(flavor, cfg, latent_dim))

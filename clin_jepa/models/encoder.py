"""Qwen3 + LoRA text encoder with an online and an EMA target adapter on ONE frozen base.

A text's embedding pools its final-layer hidden states (``encoder.pooling``: the last real
token, the paper's choice, or the mean over its real tokens; clin_jepa.models.pooling).
``encode`` deduplicates identical texts, buckets the rest by token length into batches of at
most ``encoder.encode_batch_tokens`` tokens, runs one forward per bucket and scatters the
results back in input order. With ``encoder.packing`` (on for the real flavors) the texts are
instead packed first-fit-decreasing into rows of ``encoder.pack_row_tokens`` tokens without
padding: position ids restart at 0 for each text and no 2-D attention mask is passed, which
transformers turns into a block-diagonal causal mask (sdpa / eager / flex) or variable-length
flash attention (flash_attention_2), so a text attends only to itself. With
``encoder.gradient_checkpointing`` (on for the real flavors) the decoder layers are recomputed in
the backward of a grad=True encode (transformers' activation checkpointing, non-reentrant).
The target adapter is kept in fp32 and only ever changes by
``ema_update`` / ``hard_sync`` / ``load_adapters`` (its parameters never require grad).
``online_version`` / ``target_version`` count changes of each adapter (cache keys);
``weights_version`` is the online one.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import warnings
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils import set_peft_model_state_dict
from torch import Tensor, nn

from clin_jepa.config import EncoderConfig
from clin_jepa.models.encoder_flavors import FLAVORS, resolve_dtype
from clin_jepa.models.packing import pack, packed_inputs
from clin_jepa.models.pooling import POOLINGS, padded_segments
from clin_jepa.models.sharding import any_sharded, copy_full_, full, global_max, locals_
from clin_jepa.utils import atomic_path, get_logger

log = get_logger(__name__)

ADAPTERS = ("online", "target")
SYNC_TOLERANCE = 1e-5  # max |online - target| accepted after hard_sync
_TOKEN_CACHE_SIZE = 500_000  # texts whose token ids are memoised
PAD_RATIO, PAD_SLACK = 1.25, 8  # an encode batch's longest text <= max(1.25 x, 8 tokens +) its shortest


class TextEncoder(nn.Module):
    """One base model, two LoRA adapters ("online", "target"); see the module docstring."""

    def __init__(self, model: PeftModel, tokenizer, cfg: EncoderConfig, flavor: str):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.flavor = flavor
        self.hidden_size: int = model.get_base_model().config.hidden_size
        self.online_version: int = 0  # bumps when the online adapter changes (mark_updated, load)
        self.target_version: int = 0  # bumps when the target adapter changes (ema, sync, load)
        self.forward_rows: int = 0  # texts run through the network so far (diagnostics)
        self._online_trainable = False
        self._active = "online"
        self._token_cache: dict[str, list[int]] = {}
        self._warned_truncation = False
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self._pad_id = int(pad or 0)
        self._empty_id = int(tokenizer.eos_token_id if tokenizer.eos_token_id is not None else self._pad_id)

        # matched (online, target) LoRA parameter lists, computed once for the foreach EMA
        named = dict(model.named_parameters())
        self._lora_names = sorted(n for n in named if ".lora_" in n and ".online." in n)
        if not self._lora_names:
            raise ValueError(f"no LoRA parameters found for targets {cfg.lora_targets}; check encoder.lora_targets "
                             "names modules of the Qwen3 attention (q_proj, k_proj, v_proj, o_proj)")
        self._lora_layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
        self.bind_parameters()
        for p in self._target_params:  # target kept in fp32
            p.data = p.data.float()
        self._apply_grad_flags()
        self.hard_sync()
        self.online_version = self.target_version = 0
        self.packing = cfg.enabled("packing")
        self._pool = POOLINGS[cfg.pooling]  # (B, L, D), seg, last -> (n, D)
        self.gradient_checkpointing = cfg.enabled("gradient_checkpointing")
        backbone = model.get_base_model()
        self._layers = list(backbone.model.layers)  # Qwen3DecoderLayer (GradientCheckpointingLayer)
        if self.gradient_checkpointing:
            enable = getattr(backbone, "activation_checkpointing_enable", None) or backbone.gradient_checkpointing_enable
            enable({"use_reentrant": False, "context_fn": self._recompute_context})

    def bind_parameters(self) -> None:
        """(Re)collect the matched online / target LoRA parameter lists. FSDP2's fully_shard replaces
        every parameter of the modules it wraps by a DTensor shard: call this after sharding."""
        named = dict(self.model.named_parameters())
        self._online_params = [named[n] for n in self._lora_names]
        self._target_params = [named[n.replace(".online.", ".target.")] for n in self._lora_names]

    @property
    def weights_version(self) -> int:
        """Version of the ONLINE weights (= online_version); target-only changes leave it alone."""
        return self.online_version

    # ------------------------------------------------------------------ adapters
    @property
    def device(self) -> torch.device:
        return self._online_params[0].device

    def online_parameters(self) -> list[nn.Parameter]:
        return list(self._online_params)

    def target_parameters(self) -> list[nn.Parameter]:
        return list(self._target_params)

    def base_parameters(self) -> list[nn.Parameter]:
        """Every parameter of the base model (no LoRA); frozen except during debug SFT."""
        return [p for n, p in self.model.named_parameters() if ".lora_" not in n]

    def set_online_trainable(self, flag: bool) -> None:
        self._online_trainable = bool(flag)
        self._apply_grad_flags()

    def mark_updated(self) -> None:
        """Call after an optimizer step on the online adapter: invalidates cached online latents."""
        self.online_version += 1

    def _apply_grad_flags(self) -> None:
        for p in self._online_params:
            p.requires_grad_(self._online_trainable)
        for p in self._target_params:
            p.requires_grad_(False)

    def _use(self, adapter: str) -> None:
        if adapter not in ADAPTERS:
            raise ValueError(f"adapter={adapter!r}: use 'online' or 'target'")
        if adapter != self._active:
            # what PeftModel.set_adapter does, on the LoRA layers found once (it walks every module
            # of the model per call); it flips requires_grad of both adapters: restore ours after
            for layer in self._lora_layers:
                layer.set_adapter(adapter, inference_mode=True)
            self.model.active_adapter = self.model.base_model.active_adapter = adapter
            self._active = adapter
            self._apply_grad_flags()

    @torch.no_grad()
    def ema_update(self, tau: float) -> None:
        """target <- tau * target + (1 - tau) * online (foreach, no_grad)."""
        if not 0.0 <= tau <= 1.0:
            raise ValueError(f"ema tau={tau} must be in [0, 1] (encoder.ema_tau, e.g. 0.996)")
        # elementwise: each rank updates its own shard under FSDP (online and target are sharded alike)
        target = locals_(self._target_params)
        online = [p.float() for p in locals_(self._online_params)]  # no copy when already fp32
        torch._foreach_mul_(target, tau)
        torch._foreach_add_(target, online, alpha=1.0 - tau)
        self.target_version += 1

    @torch.no_grad()
    def hard_sync(self) -> float:
        """Copy online -> target; returns the max gap, raises RuntimeError if it exceeds 1e-5."""
        torch._foreach_copy_(locals_(self._target_params), locals_(self._online_params))  # per shard
        self.target_version += 1
        gap = self.online_target_gap()
        if gap > SYNC_TOLERANCE:
            raise RuntimeError(f"hard sync failed: max |online - target| = {gap:.3g} > {SYNC_TOLERANCE}")
        return gap

    @torch.no_grad()
    def online_target_gap(self) -> float:
        """max |online - target| over all LoRA weights (of every shard: all-reduced under FSDP)."""
        diffs = torch._foreach_sub([p.float() for p in locals_(self._online_params)], locals_(self._target_params))
        gap = float(torch.stack(torch._foreach_norm(diffs, float("inf"))).max())
        return global_max(gap, any_sharded(self._target_params), self.device)

    # ------------------------------------------------------------------ encoding
    def _token_ids(self, texts: list[str]) -> list[list[int]]:
        todo = [t for t in texts if t not in self._token_cache]
        if todo:
            if len(self._token_cache) + len(todo) > _TOKEN_CACHE_SIZE:
                self._token_cache.clear()
            ids = self.tokenizer(todo, add_special_tokens=False)["input_ids"]
            for t, row in zip(todo, ids):
                if len(row) > self.cfg.max_length:
                    if not self._warned_truncation:
                        log.warning("a text has %d tokens > encoder.max_length=%d: truncated (the embedding is "
                                    "then not its last token); raise encoder.max_length", len(row), self.cfg.max_length)
                        self._warned_truncation = True
                    row = row[: self.cfg.max_length]
                self._token_cache[t] = row or [self._empty_id]
        return [self._token_cache[t] for t in texts]

    def _buckets(self, lengths: list[int]) -> list[list[int]]:
        """Indices sorted by length, cut into batches with (rows x longest) <= encode_batch_tokens
        and longest <= max(PAD_RATIO x shortest, shortest + PAD_SLACK): padding stays under ~20 %
        of the tokens run (one budget-sized batch of mixed lengths padded ~70 % on real windows)."""
        order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
        budget = self.cfg.encode_batch_tokens
        batches, cur = [], []
        for i in order:  # ascending lengths: the newest is the longest, cur[0] the shortest
            if cur and ((len(cur) + 1) * lengths[i] > budget
                        or lengths[i] > max(PAD_RATIO * lengths[cur[0]], lengths[cur[0]] + PAD_SLACK)):
                batches.append(cur)
                cur = []
            cur.append(i)
        if cur:
            batches.append(cur)
        return batches

    def _forward_padded(self, rows: list[list[int]]) -> Tensor:
        """Pooled final hidden state (encoder.pooling) of each token row, right padded: (b, D)."""
        lengths = torch.tensor([len(r) for r in rows], device=self.device)
        L = int(lengths.max())
        pad = [self._pad_id]
        ids = torch.tensor([r + pad * (L - len(r)) for r in rows], dtype=torch.long).to(self.device)  # (B, L)
        seg, last = padded_segments(lengths, L)  # (B, L) text of each token (-1 = pad), (B,) flat last index
        backbone = self.model.get_base_model().model  # Qwen3Model: no lm_head logits
        h = backbone(input_ids=ids, attention_mask=(seg >= 0).long(), use_cache=False).last_hidden_state  # (B, L, D)
        self.forward_rows += len(rows)
        return self._pool(h, seg, last).float()  # (B, D)

    def _packs(self, lengths: list[int]) -> list[list[list[int]]]:
        """Batches of packed rows of text indices (clin_jepa.models.packing.pack)."""
        return pack(lengths, min(self.cfg.pack_row_tokens, self.cfg.encode_batch_tokens), self.cfg.encode_batch_tokens)

    def _forward_packed(self, packs: list[list[list[int]]]) -> Tensor:
        """Pooled final hidden state of each token list, texts packed per row: packs[b] is
        the token lists of row b. Returns (n_texts, D) in row-major text order."""
        ids, pos, seg, last = packed_inputs(packs, self._pad_id)  # (B, L), (B, L), (B, L), (n,)
        backbone = self.model.get_base_model().model
        h = backbone(input_ids=ids.to(self.device), position_ids=pos.to(self.device), attention_mask=None,
                     use_cache=False).last_hidden_state  # (B, L, D)
        self.forward_rows += len(last)
        return self._pool(h, seg.to(self.device), last.to(self.device)).float()  # (n, D)

    def _recompute_context(self):
        """torch.utils.checkpoint context_fn: the backward's recompute of a layer runs with the
        adapter its forward used (a target encode between the online forward and the backward,
        as in the joint phase, would otherwise recompute with the target adapter)."""
        adapter = self._active

        @contextlib.contextmanager
        def recompute():
            previous = self._active
            self._use(adapter)
            try:
                yield
            finally:
                self._use(previous)

        return contextlib.nullcontext(), recompute()

    def _checkpointing(self, on: bool) -> None:
        """transformers checkpoints a layer only in training mode; the encoder stays in eval mode
        (no dropout), so only the decoder layers' own flag is switched (their children keep eval)."""
        for layer in self._layers:
            layer.training = on

    def encode(self, texts: list[str], adapter: str = "online", grad: bool = False) -> Tensor:
        """Embeddings (N, D) float32 of ``texts`` in input order; grad=True keeps the graph."""
        if isinstance(texts, str):
            raise ValueError("encode() takes a list of texts, not one string; wrap it: encode([text])")
        texts = list(texts)
        if any(not isinstance(t, str) for t in texts):
            raise ValueError("encode() got a non-string text (None/NaN?); fill missing texts with "
                             "texts.NO_OBSERVATION / texts.NO_ACTION before encoding")
        sharded = any_sharded(self._online_params)
        if not texts and not sharded:
            return torch.zeros(0, self.hidden_size, device=self.device)
        index: dict[str, int] = {}
        inverse = [index.setdefault(t, len(index)) for t in texts]  # input row -> unique row
        rows = self._token_ids(list(index))
        self._use(adapter)
        chunks, order = [], []
        lengths = [len(r) for r in rows]
        if self.packing:
            calls = [(self._forward_packed, [[rows[i] for i in row] for row in batch], [i for row in batch for i in row])
                     for batch in self._packs(lengths)]
        else:
            calls = [(self._forward_padded, [rows[i] for i in batch], batch) for batch in self._buckets(lengths)]
        # FSDP: the busiest rank's call count, agreed BEFORE any forward (a collective between the
        # layers' all-gathers would pair with another rank's all-gather)
        busiest = int(global_max(float(len(calls)), True, self.device)) if sharded else len(calls)
        self._checkpointing(grad and self.gradient_checkpointing)
        with torch.set_grad_enabled(grad):
            try:
                for forward, inputs, idx in calls:
                    chunks.append(forward(inputs))  # (b, D)
                    order += idx
                idle = self._lockstep(busiest - len(calls)) if sharded else None
            finally:
                self._checkpointing(False)
            if not texts:
                return torch.zeros(0, self.hidden_size, device=self.device) + idle  # sharded only
            emb = torch.cat(chunks)  # (U, D) in batch order
            pos = torch.empty(len(order), dtype=torch.long)
            pos[torch.tensor(order)] = torch.arange(len(order))
            emb = emb[pos.to(emb.device)]  # (U, D) in first-occurrence order
            emb = emb[torch.tensor(inverse, device=emb.device)]  # (N, D)
            return emb if idle is None else emb + idle

    def _lockstep(self, missing: int) -> Tensor:
        """Under FSDP every rank must run each sharded layer's forward (and backward) the same number
        of times: its all-gathers / reduce-scatters are collectives. A rank with ``missing`` fewer forward
        calls than the busiest one runs one-token dummy forwards; their outputs join the result with
        weight 0 (so a backward runs through them too). Returns that 0 term."""
        zero = torch.zeros((), device=self.device)
        for _ in range(missing):
            zero = zero + 0.0 * self._forward_padded([[self._empty_id]]).sum()
        return zero

    def lm_loss(self, texts: list[str], adapter: str = "online") -> Tensor:
        """Mean next-token cross-entropy over the tokens of ``texts`` (each followed by eos): the
        SFT objective. The texts run in length buckets (``_buckets``) and the LM head sees real
        positions only: one padded batch of 64 random texts was 66 % padding on the demo's texts
        (BENCHMARKS.md, SFT). Same value as one padded batch to float rounding."""
        rows = [r + [self._empty_id] for r in self._token_ids(list(texts))]
        self._use(adapter)
        peft_base = self.model.get_base_model()
        backbone, head = peft_base.model, peft_base.get_output_embeddings()
        total = sum(len(r) - 1 for r in rows)  # predicted tokens
        loss = torch.zeros((), device=self.device)
        for batch in self._buckets([len(r) for r in rows]):
            lengths = torch.tensor([len(rows[i]) for i in batch], device=self.device)
            L = int(lengths.max())
            ids = torch.tensor([rows[i] + [self._pad_id] * (L - len(rows[i])) for i in batch],
                               dtype=torch.long, device=self.device)  # (b, L)
            mask = torch.arange(L, device=self.device)[None, :] < lengths[:, None]  # (b, L)
            h = backbone(input_ids=ids, attention_mask=mask.long(), use_cache=False).last_hidden_state  # (b, L, D)
            step = mask[:, 1:]  # (b, L-1): position t predicts token t+1 when t+1 is real
            logits = head(h[:, :-1][step]).float()  # (m, V)
            loss = loss + nn.functional.cross_entropy(logits, ids[:, 1:][step], reduction="sum")
        return loss / max(total, 1)

    # ------------------------------------------------------------------ persistence
    @torch.no_grad()
    def adapter_state(self) -> dict[str, Tensor] | None:
        """Full CPU tensors of both adapters when sharded (FSDP; a collective: every rank calls it),
        else None (save_adapters reads the parameters itself)."""
        params = self._online_params + self._target_params
        if not any_sharded(params):
            return None
        named = dict(zip(self._lora_names + [n.replace(".online.", ".target.") for n in self._lora_names], params))
        return {n: full(p).detach().cpu().contiguous() for n, p in named.items()}

    def save_adapters(self, path: str | os.PathLike, state: dict[str, Tensor] | None = None) -> None:
        """peft format: path/online and path/target (adapter_config.json + adapter_model.safetensors).
        ``state``: the gathered adapter_state() of a sharded encoder."""
        if state is None and any_sharded(self._online_params):
            raise ValueError("save_adapters of a sharded (FSDP) encoder needs state=encoder.adapter_state(), "
                             "gathered on every process")
        with atomic_path(path) as tmp:
            self.model.save_pretrained(str(tmp), selected_adapters=list(ADAPTERS),
                                       **({"state_dict": state} if state is not None else {}))
            (tmp / "encoder.json").write_text(json.dumps(
                {"flavor": self.flavor, "hidden_size": self.hidden_size, "lora_r": self.cfg.lora_r,
                 "lora_alpha": self.cfg.lora_alpha, "lora_targets": list(self.cfg.lora_targets)}, indent=2))

    def save_base(self, path: str | os.PathLike) -> None:
        """The base model without LoRA (save_pretrained layout; the debug flavor's SFT-trained base)."""
        base = self.model.get_base_model()
        state = {}
        for n, p in base.state_dict().items():
            if ".lora_" in n:
                continue
            state[n.replace(".base_layer.", ".")] = p.detach().contiguous()  # PEFT wraps targets in base_layer
        if base.config.tie_word_embeddings:
            state.pop("lm_head.weight", None)
        with atomic_path(path) as tmp:
            base.save_pretrained(str(tmp), state_dict=state)

    def save_adapter(self, path: str | os.PathLike, adapter: str = "online") -> None:
        """One adapter as a plain peft adapter dir: PeftModel.from_pretrained(base, path) loads it."""
        if adapter not in ADAPTERS:
            raise ValueError(f"adapter={adapter!r}: use 'online' or 'target'")
        with atomic_path(path) as tmp:
            self.model.save_pretrained(str(tmp), selected_adapters=[adapter])
            for f in (tmp / adapter).iterdir():  # peft nests non-default adapters: flatten
                f.rename(tmp / f.name)
            (tmp / adapter).rmdir()

    def load_adapters(self, path: str | os.PathLike, adapters: tuple[str, ...] = ADAPTERS) -> None:
        """Load adapters saved by save_adapters (path/online, path/target)."""
        for name in adapters:
            self.load_adapter(Path(path) / name, name)

    def load_adapter(self, folder: str | os.PathLike, name: str) -> None:
        """Load one peft adapter dir (adapter_config.json + adapter_model.safetensors) into ``name``."""
        from safetensors.torch import load_file

        if name not in ADAPTERS:
            raise ValueError(f"adapter={name!r}: use 'online' or 'target'")
        folder = Path(folder)
        conf_file, weight_file = folder / "adapter_config.json", folder / "adapter_model.safetensors"
        for f in (conf_file, weight_file):
            if not f.exists():
                raise FileNotFoundError(f"{f} not found: {folder} is not a saved peft adapter (expected "
                                        "adapter_config.json + adapter_model.safetensors, written by save_adapters)")
        try:
            conf = json.loads(conf_file.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{conf_file} is corrupt ({e}); restore it from an earlier checkpoint") from None
        if (conf.get("r"), conf.get("lora_alpha")) != (self.cfg.lora_r, self.cfg.lora_alpha) or \
                sorted(conf.get("target_modules") or []) != sorted(self.cfg.lora_targets):
            raise ValueError(f"{conf_file}: LoRA r={conf.get('r')} alpha={conf.get('lora_alpha')} targets="
                             f"{conf.get('target_modules')} differ from encoder config r={self.cfg.lora_r} alpha="
                             f"{self.cfg.lora_alpha} targets={list(self.cfg.lora_targets)}; use the run's config")
        try:
            state = load_file(str(weight_file))
        except Exception as e:
            raise ValueError(f"{weight_file} is truncated or corrupt ({e}); restore it from an earlier "
                             "checkpoint or re-run the stage that wrote it") from None
        self._load_state(name, state, weight_file)
        self._apply_grad_flags()
        if name == "online":
            self.online_version += 1
        else:
            self.target_version += 1

    def _load_state(self, name: str, state: dict[str, Tensor], source: Path) -> None:
        expected = {n.replace(".online.", f".{name}.") for n in self._lora_names}
        if any_sharded(self._online_params):  # FSDP: load_state_dict cannot copy a full tensor into a shard
            self._load_sharded(name, state, source)
            return
        result = set_peft_model_state_dict(self.model, state, adapter_name=name)
        missing = sorted(k for k in result.missing_keys if k in expected)
        if missing or result.unexpected_keys:
            raise ValueError(f"{source} does not match this encoder (missing {missing[:3]}, unexpected "
                             f"{list(result.unexpected_keys)[:3]}); it was saved for another flavor or LoRA config")

    def _load_sharded(self, name: str, state: dict[str, Tensor], source: Path) -> None:
        """Slice each full saved tensor into this rank's shard. peft saves a weight under its model
        name without the adapter (``...q_proj.lora_A.weight`` for ``...q_proj.lora_A.online.weight``)."""
        params = self._online_params if name == "online" else self._target_params
        keys = [n.replace(".online.", ".") for n in self._lora_names]
        missing = [k for k in keys if k not in state]
        unexpected = sorted(set(state) - set(keys))
        if missing or unexpected:
            raise ValueError(f"{source} does not match this encoder (missing {missing[:3]}, unexpected "
                             f"{unexpected[:3]}); it was saved for another flavor or LoRA config")
        for k, p in zip(keys, params):
            copy_full_(p, state[k])


def build_encoder(flavor: str, cfg: EncoderConfig | None = None, model_dir=None, tokenizer_dir=None,
                  random_weights: bool = False, device: str | torch.device | None = None) -> TextEncoder:
    """Base (frozen) + LoRA "online" and "target" adapters; see encoder_flavors for the flavors."""
    if flavor not in FLAVORS:
        raise ValueError(f"unknown encoder flavor {flavor!r}; use one of {', '.join(FLAVORS)}")
    cfg = copy.deepcopy(cfg) if cfg is not None else EncoderConfig(flavor=flavor)
    cfg.flavor = flavor
    cfg.validate()
    device = torch.device(device) if device is not None else torch.device("cpu")
    dtype = resolve_dtype(cfg, device)
    model_dir = model_dir or cfg.model_dir or None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.init_seed)
        base, tok = FLAVORS[flavor](cfg, model_dir, tokenizer_dir, random_weights, dtype, device)
        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=list(cfg.lora_targets), bias="none", task_type="CAUSAL_LM")
        with warnings.catch_warnings():  # peft calls a transformers 5 deprecated helper
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model = get_peft_model(base, lora, adapter_name="online")
            model.add_adapter("target", copy.deepcopy(lora))
        model.set_adapter("online")
    model.eval()
    enc = TextEncoder(model, tok, cfg, flavor).to(device)
    n_base = sum(p.numel() for p in enc.base_parameters())
    n_lora = sum(p.numel() for p in enc.online_parameters())
    log.info("encoder %s: base %.2fM params (frozen), LoRA %.3fM per adapter, hidden %d, %s",
             flavor, n_base / 1e6, n_lora / 1e6, enc.hidden_size, dtype)
    return enc

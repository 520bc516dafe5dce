"""The sections of the run configuration (clin_jepa.config.RunConfig), one dataclass each.

Every key and its library default lives here, with its unit in a comment (hours, mmHg, ...);
``validate()`` refuses a bad value naming the key and the fix, and checks names (flavors,
poolings, regularizers, curricula, baselines, probe kinds) against the registries that
implement them, imported only when validated. Loading, merging and overrides: clin_jepa.config.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass
class SynthConfig:
    stays: int = 600  # number of synthetic ICU stays
    seed: int = 0
    patients_ratio: float = 0.85  # patients per stay (some patients have several stays), in [0.5, 1]

    def validate(self) -> None:
        if self.stays < 1:
            raise ValueError(f"synth.stays={self.stays}: the synthetic MIMIC-IV needs at least 1 ICU stay, "
                             "e.g. --stays 600")
        if not 0.5 <= self.patients_ratio <= 1.0:
            raise ValueError(f"synth.patients_ratio={self.patients_ratio}: use a number in [0.5, 1] "
                             "(patients per stay; 0.85 gives some readmissions)")


@dataclass
class DataConfig:
    mimic_dir: str = ""  # MIMIC-IV root (hosp/, icu/); empty -> synthetic under the run dir
    data_dir: str = ""  # extraction output; empty -> <run>/data
    first_stay_only: bool = True  # paper default: first ICU stay per patient
    min_age: int = 18  # years
    min_los_hours: float = 6.0  # hours
    max_stay_hours: int = 168  # hourly grid cap (7 days)
    window_hours: int = 72  # training/eval window length (hours)
    split_fractions: tuple[float, float, float] = (0.70, 0.15, 0.15)  # train/val/test by patient
    split_seed: int = 42
    prediction_hour: int = 24  # per-stay tasks are predicted from the first 24 h
    eep_horizon: int = 12  # early-event tasks: event within the next 12 h
    tasks_dir: str = ""  # folder of task files (docs/labels.md); empty -> configs/tasks
    duckdb_memory_limit: str = "8GB"
    duckdb_threads: int = 0  # 0 -> DuckDB default (all cores)
    duckdb_temp_dir: str = ""  # spill + cached sources; empty -> next to the output data dir
    lab_lookback_hours: float = 6.0  # hours before intime whose labs count in hour 0 (mimic-code first day: 6)
    antibiotic_default_hours: int = 24  # hours an antibiotic order without a valid stoptime lasts
    cache_sources: bool = True  # parse each csv(.gz) source once into a typed parquet copy
    source_cache_dir: str = ""  # typed copies kept between runs; empty -> $XDG_CACHE_HOME/clin-jepa/sources
    max_malformed_fraction: float = 0.01  # per table column: more malformed ids/times than this stops the run
    text_mode: str = "events"  # hourly state texts the run encodes: events | snapshot (clin_jepa.data.texts.TEXT_MODES)

    def validate(self) -> None:
        if len(self.split_fractions) != 3 or abs(sum(self.split_fractions) - 1.0) > 1e-6:
            raise ValueError("data.split_fractions must be three numbers summing to 1, e.g. [0.7, 0.15, 0.15]")
        if any(f < 0 for f in self.split_fractions):
            raise ValueError("data.split_fractions must be non-negative, e.g. [0.7, 0.15, 0.15]")
        if self.min_los_hours < 0 or self.min_age < 0:
            raise ValueError("data.min_age and data.min_los_hours must be >= 0 (defaults 18 years, 6 hours)")
        if self.max_stay_hours < 1:
            raise ValueError("data.max_stay_hours must be >= 1 hour (default 168)")
        if self.lab_lookback_hours < 0 or self.antibiotic_default_hours < 1:
            raise ValueError("data.lab_lookback_hours must be >= 0 and data.antibiotic_default_hours >= 1")
        if self.window_hours < 2:
            raise ValueError("data.window_hours must be >= 2 (the predictor needs a next hour)")
        if not 1 <= self.prediction_hour <= self.max_stay_hours:
            raise ValueError(f"data.prediction_hour must be between 1 and data.max_stay_hours "
                             f"({self.max_stay_hours}), e.g. 24")
        if self.eep_horizon < 1:
            raise ValueError("data.eep_horizon must be >= 1 hour, e.g. 12")
        if not 0.0 <= self.max_malformed_fraction <= 1.0:
            raise ValueError("data.max_malformed_fraction must be in [0, 1], e.g. 0.01 (1 % of a table's rows)")
        from clin_jepa.data.texts import text_mode  # the registry that builds them

        text_mode(self.text_mode)


@dataclass
class TokenizerConfig:
    vocab_size: int = 2048  # debug flavor: BPE vocabulary trained on the hourly texts
    max_texts: int = 200_000  # texts sampled to train it
    seed: int = 0  # which texts are sampled when there are more than max_texts

    def validate(self) -> None:
        if self.vocab_size < 300:
            raise ValueError("tokenizer.vocab_size must be >= 300 (256 bytes + special tokens + merges), e.g. 2048")
        if self.max_texts < 1:
            raise ValueError("tokenizer.max_texts must be >= 1, e.g. 200000")


ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2", "flex_attention")


@dataclass
class EncoderConfig:
    flavor: str = "debug"  # debug | small | qwen3-0.6b | qwen3-8b (clin_jepa.models.encoder_flavors.FLAVORS)
    model_dir: str = ""  # local directory with weights + tokenizer (real flavors)
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    max_length: int = 256  # tokens per text
    encode_batch_tokens: int = 16384  # token budget of one encoding forward
    ema_tau: float = 0.996  # target <- tau * target + (1 - tau) * online
    dtype: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16
    init_seed: int = 0  # debug base weights + LoRA init (built under a forked RNG)
    attn_implementation: str = "sdpa"  # sdpa | eager | flash_attention_2 (needs flash-attn, CUDA) | flex_attention
    gradient_checkpointing: str = "auto"  # auto (on for the real flavors) | on | off: recompute layers in backward
    packing: str = "auto"  # auto (on for the real flavors) | on | off: texts packed into rows without padding
    pack_row_tokens: int = 1024  # tokens per packed row, capped by encode_batch_tokens (sdpa/eager: a row x row mask)
    pooling: str = "last"  # last (the paper's: last real token) | mean (over real tokens): text -> latent

    def validate(self) -> None:
        from clin_jepa.models.encoder_flavors import FLAVORS  # the registry that builds them
        from clin_jepa.models.pooling import POOLINGS

        _one_of("encoder.flavor", self.flavor, FLAVORS)
        _one_of("encoder.pooling", self.pooling, POOLINGS)
        if self.lora_r < 1 or self.lora_alpha <= 0:
            raise ValueError("encoder.lora_r must be >= 1 and encoder.lora_alpha > 0 (paper: r=16, alpha=32)")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError("encoder.lora_dropout must be in [0, 1), e.g. 0.0")
        if not self.lora_targets:
            raise ValueError("encoder.lora_targets is empty; use e.g. [q_proj, k_proj, v_proj, o_proj]")
        if self.max_length < 4:
            raise ValueError("encoder.max_length must be >= 4 tokens, e.g. 256")
        if self.encode_batch_tokens < self.max_length:
            raise ValueError("encoder.encode_batch_tokens must be >= encoder.max_length (one text must fit a batch)")
        if not 0.0 <= self.ema_tau <= 1.0:
            raise ValueError("encoder.ema_tau must be in [0, 1], e.g. 0.996")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"encoder.dtype={self.dtype!r}: use auto, float32 or bfloat16")
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ValueError(f"encoder.attn_implementation={self.attn_implementation!r}: use one of "
                             f"{', '.join(ATTN_IMPLEMENTATIONS)}")
        if self.attn_implementation == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
            raise ValueError("encoder.attn_implementation=flash_attention_2 needs the flash-attn package "
                             "(pip install flash-attn, CUDA only); or use sdpa")
        for name in ("gradient_checkpointing", "packing"):
            value = str(getattr(self, name)).lower()  # YAML reads on/off/true/false as booleans
            setattr(self, name, {"true": "on", "false": "off"}.get(value, value))
            if getattr(self, name) not in ("auto", "on", "off"):
                raise ValueError(f"encoder.{name}={getattr(self, name)!r}: use auto, on or off")
        if self.pack_row_tokens < self.max_length:
            raise ValueError("encoder.pack_row_tokens must be >= encoder.max_length (one text must fit a row), e.g. 1024")

    def enabled(self, name: str) -> bool:
        """Resolve a tri-state flag (gradient_checkpointing, packing): auto = on for the real
        flavors (off for a ``tiny`` one: the debug model gains nothing)."""
        from clin_jepa.models.encoder_flavors import spec

        value = getattr(self, name)
        return value == "on" or (value == "auto" and not spec(self.flavor).tiny)


@dataclass
class PredictorConfig:
    flavor: str = "debug"  # debug | paper (clin_jepa.models.predictor.FLAVORS)
    latent_dim: int = 0  # 0 -> flavor default; build_predictor(latent_dim=encoder hidden size) wins
    width: int = 0  # transformer width; 0 -> flavor default (paper 1024)
    layers: int = 0  # 0 -> flavor default (paper 6)
    heads: int = 0  # 0 -> flavor default (paper 8)
    ffn: int = 0  # FFN hidden units; 0 -> flavor default (paper 4096)
    dropout_ffn: float = -1.0  # probability; <0 -> flavor default (paper 0.15)
    dropout_attn: float = -1.0  # attention-weight dropout probability; <0 -> flavor default (paper 0.10)
    max_steps: int = 0  # hours the learned hour embedding covers (window + rollout); 0 -> flavor default (72)

    def validate(self) -> None:
        from clin_jepa.models.predictor import FLAVORS

        _one_of("predictor.flavor", self.flavor, FLAVORS)
        for name in ("latent_dim", "width", "layers", "heads", "ffn", "max_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"predictor.{name} must be >= 0 (0 = flavor default)")
        if self.dropout_ffn >= 1.0 or self.dropout_attn >= 1.0:
            raise ValueError("predictor.dropout_ffn/dropout_attn must be < 1 (negative = flavor default)")


@dataclass
class LossConfig:
    tf_weight: float = 1.0  # teacher-forcing L1 (summed over latent dims, mean over valid hours)
    rollout_weight: float = 1.0  # rollout L1 term (1:1 with teacher forcing in the paper)
    rollout_steps: int = 2  # hours chained from a random start k
    rollout_reduction: str = "sum"  # sum | mean over the rollout steps (sum: the reference code's weighting)
    regularizer: str = "none"  # none | vicreg | sigreg (anti-collapse ablations; off in the paper)
    reg_weight: float = 0.0  # weight of the regulariser in the loss (0 = monitor only)
    vicreg_std_target: float = 1.0  # VICReg hinge: per-feature std below this is penalised
    vicreg_cov_weight: float = 0.04  # covariance term relative to the variance term (VICReg 1:25)
    sigreg_directions: int = 256  # random 1-D projections per SIGReg evaluation
    sigreg_knots: int = 17  # quadrature points of the Epps-Pulley integral on t in [0, 3]

    def validate(self) -> None:
        from clin_jepa.training.losses import REGULARIZERS

        _one_of("loss.regularizer", self.regularizer, REGULARIZERS)
        if min(self.tf_weight, self.rollout_weight, self.reg_weight) < 0:
            raise ValueError("loss.tf_weight, loss.rollout_weight and loss.reg_weight must be >= 0")
        if self.tf_weight == 0 and self.rollout_weight == 0:
            raise ValueError("loss.tf_weight and loss.rollout_weight are both 0: set at least one > 0 (paper 1:1)")
        if self.rollout_steps < 1:
            raise ValueError(f"loss.rollout_steps={self.rollout_steps} must be >= 1 (paper: 2)")
        if self.rollout_reduction not in ("sum", "mean"):
            raise ValueError(f"loss.rollout_reduction={self.rollout_reduction!r}: use sum (reference) or mean")
        if self.reg_weight > 0 and self.regularizer == "none":
            raise ValueError("loss.reg_weight > 0 but loss.regularizer is none: set loss.regularizer=vicreg or sigreg")
        if self.sigreg_directions < 1 or self.sigreg_knots < 3:
            raise ValueError("loss.sigreg_directions must be >= 1 and loss.sigreg_knots >= 3 (e.g. 256, 17)")


@dataclass
class SFTConfig:
    steps: int = 300  # optimizer steps of next-token prediction on the run's texts
    batch_size: int = 64  # texts per step
    lr: float = 1e-3  # AdamW peak learning rate (linear warmup, cosine to 10 %); the embedded default: 3e-3
    train_base: bool = True  # debug/small flavors only: train the small base as well
    seed: int = 0  # the SFT stage's seed: the small base's and LoRA's initialisation, the texts each step samples
    val_fraction: float = 0.05  # unique texts held out to report next-token loss before/after
    log_every: int = 25  # steps
    cpu_threads: int = 0  # torch threads for SFT on CPU; 0 -> 1 for debug (tiny matmuls), torch default otherwise

    def validate(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("sft.steps must be >= 0, sft.batch_size >= 1 and sft.lr > 0 (e.g. 300, 64, 1e-3)")
        if not 0.0 <= self.val_fraction < 0.5:
            raise ValueError("sft.val_fraction must be in [0, 0.5), e.g. 0.05")
        if self.cpu_threads < 0:
            raise ValueError("sft.cpu_threads must be >= 0 (0 = automatic)")


@dataclass
class OptimConfig:
    lr_encoder: float = 2e-4
    lr_predictor: float = 5e-4
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 20  # linear warmup, then cosine over the whole curriculum
    min_lr_ratio: float = 0.1
    clip_encoder: float = 1.0
    clip_predictor: float = 1.0
    batch_size: int = 8  # stays per optimizer micro-batch (per process)
    grad_accum: int = 1  # micro-batches per optimizer step

    def validate(self) -> None:
        if self.lr_encoder < 0 or self.lr_predictor <= 0:
            raise ValueError("optim.lr_encoder must be >= 0 and optim.lr_predictor > 0, e.g. 2e-4 / 5e-4")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("optim.batch_size and optim.grad_accum must be >= 1, e.g. 8 and 1")
        if self.warmup_steps < 0 or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError("optim.warmup_steps must be >= 0 and optim.min_lr_ratio in [0, 1], e.g. 20 / 0.1")
        if self.clip_encoder <= 0 or self.clip_predictor <= 0:
            raise ValueError("optim.clip_encoder/clip_predictor must be > 0 (gradient-norm bounds), e.g. 1.0")


@dataclass
class TrainConfig:
    curriculum: str = "full"  # name in configs/curriculum/ or a path to a YAML file
    drop_phases: tuple[str, ...] = ()  # phase names to drop from the curriculum
    seed: int = 0
    mixed_precision: str = "auto"  # auto (bf16 on GPU, no on CPU) | no | bf16
    log_every: int = 10  # optimizer steps
    checkpoint_every: int = 50  # optimizer steps; phase boundaries always checkpoint
    z_std_floor: float = 1e-4  # collapse watchdog
    val_every: int = 50  # optimizer steps; every phase start/end also validates
    val_stays: int = 64  # validation stays (the first ones of the val split)
    steps_scale: float = 1.0  # multiplies every phase step budget of the curriculum
    phase_steps: tuple[str, ...] = ()  # per-phase budgets, e.g. [joint=2000, align=500] (optimizer steps)
    stop_after_steps: int = 0  # >0: save state and stop at this global optimizer step (resume later)
    latent_cache: bool = True  # reuse frozen-online-encoder latents across steps (False: re-encode every step)
    cache_block: int = 64  # texts encoded together on a latent-cache miss (fixed blocks of ids)
    cache_storage: str = "host"  # device | host (CPU RAM, pinned on CUDA) | memmap (temporary file in cache_dir)
    cache_dtype: str = "auto"  # auto (the encoder's dtype: lossless) | float32 | bfloat16 | float16
    cache_dir: str = ""  # directory of the memmap cache file ("" = the system temp directory)
    mask_ratio: float = 0.5  # masked_jepa: fraction of a window's state latents masked
    masked_layers: int = 2  # masked_jepa: throw-away predictor depth
    masked_width: int = 64  # masked_jepa: throw-away predictor width
    cpu_threads: int = 0  # torch threads for pretraining on CPU; 0 -> 1 when encoder and predictor are debug, else torch default

    def validate(self) -> None:
        if self.cpu_threads < 0:
            raise ValueError("train.cpu_threads must be >= 0 (0 = automatic)")
        if str(self.mixed_precision).lower() == "false":  # YAML reads `no` as a boolean
            self.mixed_precision = "no"
        if self.mixed_precision not in ("auto", "no", "bf16"):
            raise ValueError(f"train.mixed_precision={self.mixed_precision!r}: use auto, no or bf16")
        if min(self.log_every, self.checkpoint_every, self.val_every, self.val_stays, self.cache_block) < 1:
            raise ValueError("train.log_every/checkpoint_every/val_every/val_stays/cache_block must be >= 1")
        if self.stop_after_steps < 0:
            raise ValueError("train.stop_after_steps must be >= 0 (0 = run to the end)")
        if self.cache_storage not in ("device", "host", "memmap"):
            raise ValueError(f"train.cache_storage={self.cache_storage!r}: use device, host or memmap")
        if self.cache_dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"train.cache_dtype={self.cache_dtype!r}: use auto, float32, bfloat16 or float16")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"train.mask_ratio={self.mask_ratio}: must be in (0, 1), e.g. 0.5")
        if self.masked_layers < 1 or self.masked_width < 8 or self.masked_width % 4:
            raise ValueError("train.masked_layers must be >= 1 and train.masked_width a multiple of 4 >= 8")
        if self.z_std_floor < 0:
            raise ValueError("train.z_std_floor must be >= 0 (0 disables the collapse watchdog)")
        from clin_jepa.training.curriculum import load_curriculum  # names, drop_phases, phase_steps

        load_curriculum(self.curriculum, self.drop_phases, self.steps_scale, self.phase_steps)


@dataclass
class EvalConfig:
    contexts: tuple[int, ...] = (6, 12, 24, 48)  # hours of context for rollout drift
    horizon: int = 48  # hours rolled out (capped per context by data.window_hours - context)
    displacement_window: int = 24  # hours: latents of hour 0 vs the last hour <= this
    displacement_min_hours: int = 6  # stays with fewer hours of data are not eligible
    displacement_baseline_hours: int = 6  # hours 0..B: admission period (SOFA baseline = its max; support starting in it is not new)
    # rollout decoding (evaluation.rollout_decoding): latent -> 24 clinical variables
    decode_kind: str = "linear"  # decoder per variable: linear (ridge) | mlp (1 hidden layer; ~20 s a variable at 30k rows)
    decode_max_rows: int = 30_000  # train stay-hours the decoders are fitted on, at most (a seeded sample)
    decode_lgbm_horizons: tuple[int, ...] = (1, 6, 12, 24, 48)  # hours ahead with a LightGBM forecaster (time bound)
    bootstrap: int = 500  # bootstrap replicates (clustered by stay)
    seeds: tuple[int, ...] = (0,)  # probe/baseline training seeds (mean +- sd over them)
    baselines: tuple[str, ...] = ("logreg", "lightgbm", "lstm", "tcn")
    min_positives: int = 5  # tasks with fewer positives (or no negatives) in a split are reported as such
    max_eep_hours: int = 48  # EEP evaluation hours per stay (the first ones)
    recall_precision: float = 0.5  # EEP event recall is read at this time-point precision
    # probes on frozen latents (candidates fitted on train, the lowest validation loss is used)
    probe_kinds: tuple[str, ...] = ("linear", "mlp")  # candidates: linear = no hidden layer, mlp = 1 hidden layer
    probe_epochs: int = 50  # max epochs (early stopping on validation loss)
    probe_hidden: int = 32  # hidden units of the mlp probe
    probe_lr: float = 1e-3
    probe_dropout: float = 0.5  # dropout after the mlp probe's hidden layer
    probe_weight_decay: float = 1e-2  # mlp probe: AdamW decoupled weight decay (per step, x lr)
    probe_l2: tuple[float, ...] = (10.0, 1.0, 0.1, 0.01, 0.001)  # linear probe: L2 penalties tried (per row, on standardised inputs)
    probe_batch_size: int = 64  # rows per probe step (small tasks have ~200 train rows)
    probe_rollout_hours: int = 12  # hours rolled out for the rolled-out-latent probe
    probe_rollout_eep: bool = False  # also roll out at every EEP hour (slow on CPU)
    probes: tuple[str, ...] = ("probe", "probe_context", "probe_actions")  # probe inputs (evaluation.probes.REPRESENTATIONS)
    world_probe_kinds: tuple[str, ...] = ("linear",)  # candidates of probe_context / probe_actions (mlp: ~3x their fit time)
    patience: int = 5  # epochs without validation improvement before stopping
    batch_size: int = 256  # rows (flat models) or stays (sequence models) per step
    # baselines (YAIB-style, sized for CPU)
    logreg_c: float = 0.1  # inverse L2 strength
    lgbm_estimators: int = 400  # max boosting rounds (early stopping on validation)
    lgbm_lr: float = 0.05
    lgbm_leaves: int = 31
    seq_hidden: int = 64  # LSTM hidden size / TCN channels
    seq_layers: int = 1  # LSTM layers
    tcn_levels: int = 3  # TCN residual blocks (dilations 1, 2, 4, ...)
    tcn_kernel: int = 3
    seq_dropout: float = 0.1
    seq_epochs: int = 15  # max epochs (early stopping on validation loss)
    seq_lr: float = 1e-3
    encode_chunk: int = 1024  # texts per encode call of `clin-jepa embed` (the unit shared out across processes)
    threads: int = 1  # CPU threads for LightGBM / torch in evaluation (tiny models: 1 is fastest on a shared CPU)

    def validate(self) -> None:
        if not self.contexts or min(self.contexts) < 2:
            raise ValueError("eval.contexts must be hours >= 2 (linear extrapolation needs two), e.g. [6, 12, 24, 48]")
        if self.horizon < 1:
            raise ValueError("eval.horizon must be >= 1 hour, e.g. 48")
        if self.encode_chunk < 1:
            raise ValueError("eval.encode_chunk must be >= 1 text, e.g. 1024")
        if self.displacement_window < 1:
            raise ValueError("eval.displacement_window must be >= 1 hour, e.g. 24")
        if not 0 <= self.displacement_baseline_hours < self.displacement_window:
            raise ValueError("eval.displacement_baseline_hours must be in [0, eval.displacement_window), e.g. 6")
        if self.bootstrap < 10:
            raise ValueError("eval.bootstrap must be >= 10 replicates (500 is the paper's setting)")
        if self.decode_kind not in ("linear", "mlp"):
            raise ValueError(f"eval.decode_kind={self.decode_kind!r}: use linear or mlp")
        if self.decode_max_rows < 100 or any(h < 1 for h in self.decode_lgbm_horizons):
            raise ValueError("eval.decode_max_rows must be >= 100 rows and eval.decode_lgbm_horizons hours >= 1, "
                             "e.g. 30000 and [1, 6, 12, 24, 48]")
        from clin_jepa.evaluation.baselines import FLAT, SEQUENCE
        from clin_jepa.evaluation.probes import PROBE_KINDS

        bad = sorted(set(self.baselines) - set(FLAT + SEQUENCE))
        if bad:
            raise ValueError(f"eval.baselines has unknown {bad}; use a subset of {', '.join(FLAT + SEQUENCE)}")
        if not 0.0 < self.recall_precision < 1.0:
            raise ValueError("eval.recall_precision must be in (0, 1), e.g. 0.5")
        if not self.seeds:
            raise ValueError("eval.seeds needs at least one seed, e.g. [0]")
        kinds = set(self.probe_kinds)
        from clin_jepa.evaluation.probes import REPRESENTATIONS

        if not self.probes or set(self.probes) - set(REPRESENTATIONS):
            raise ValueError(f"eval.probes={list(self.probes)}: use a non-empty subset of {list(REPRESENTATIONS)}")
        if not self.world_probe_kinds or set(self.world_probe_kinds) - set(PROBE_KINDS):
            raise ValueError(f"eval.world_probe_kinds={list(self.world_probe_kinds)}: use a non-empty subset of "
                             f"{list(PROBE_KINDS)}")
        if not kinds or kinds - set(PROBE_KINDS):
            raise ValueError(f"eval.probe_kinds={list(self.probe_kinds)}: use a non-empty subset of "
                             f"{', '.join(PROBE_KINDS)}")
        if "mlp" in kinds and self.probe_hidden < 1:
            raise ValueError("eval.probe_hidden must be >= 1 unit for the mlp probe, e.g. 32")
        if not 0.0 <= self.probe_dropout < 1.0 or self.probe_weight_decay < 0:
            raise ValueError("eval.probe_dropout must be in [0, 1) and eval.probe_weight_decay >= 0, e.g. 0.5 and 1e-2")
        if "linear" in kinds and (not self.probe_l2 or min(self.probe_l2) < 0):
            raise ValueError("eval.probe_l2 needs at least one penalty >= 0 for the linear probe, e.g. [1, 0.1, 0.01]")
        if self.probe_batch_size < 1 or self.probe_epochs < 1:
            raise ValueError("eval.probe_batch_size and eval.probe_epochs must be >= 1, e.g. 64 and 50")


def _one_of(key: str, value: str, registry) -> None:
    if value not in registry:
        raise ValueError(f"{key}={value!r}: use one of {', '.join(registry)}")

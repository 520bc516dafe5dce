"""RunDir: the one owner of a run directory's layout, its config and its stage markers.

    RUN/config.yaml            the run's settings, written when the run is created
    RUN/config_changes.json    explicit changes (--reconfigure): keys, old/new values, stale stages
    RUN/mimic/                 synthetic MIMIC-IV (when data.mimic_dir is empty)
    RUN/data/                  extraction (when data.data_dir is empty)
    RUN/tokenizer/             own-tokenizer flavors (debug)
    RUN/sft/{base,adapter,metrics.json}
    RUN/checkpoints/<NN>_<phase>/, RUN/checkpoints/last/
    RUN/final/{encoder/{online,target},predictor.safetensors,predictor.json}
    RUN/pretrain_summary.json, RUN/logs/, RUN/logs/stage_times.json
    RUN/embeddings/, RUN/eval/<name>.json, RUN/report/, RUN/demo_timings.json

Paths in the config (data.mimic_dir, data.data_dir, data.duckdb_temp_dir, encoder.model_dir,
train.curriculum when a YAML path) are resolved once when a setting is given (relative to the working directory of that
command) and stored relative to the run when inside it, else absolute: a run can be moved
and used from any directory. ``run_dir`` is never stored; it is where the file was read.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from clin_jepa.config import CONFIG_END, RunConfig, dump_config, from_dict, load_config
from clin_jepa.utils import get_logger, read_json, write_json

log = get_logger(__name__)

PATH_KEYS = (("data", "mimic_dir"), ("data", "data_dir"), ("data", "duckdb_temp_dir"), ("encoder", "model_dir"),
             ("train", "curriculum"))  # train.curriculum only when it is a YAML path, not a name


def _is_path(section: str, key: str, value: str) -> bool:
    return bool(value) and (key != "curriculum" or value.endswith((".yaml", ".yml")))
# stages in pipeline order; a changed setting makes its section's stage and every later one stale
STAGES = ("synth", "extract", "sft", "pretrain", "embed", "evaluate", "report")
SECTION_STAGE = {"synth": "synth", "data": "extract", "tokenizer": "sft", "encoder": "sft", "sft": "sft",
                 "predictor": "pretrain", "loss": "pretrain", "optim": "pretrain", "train": "pretrain",
                 "eval": "evaluate"}
KEY_STAGE = {"data.text_mode": "sft"}  # read after the extraction (which writes every text mode)


class RunDir:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    # ------------------------------------------------------------------ layout
    config_file = property(lambda self: self.root / "config.yaml")
    changes_file = property(lambda self: self.root / "config_changes.json")
    mimic = property(lambda self: self.root / "mimic")
    tokenizer = property(lambda self: self.root / "tokenizer")
    sft = property(lambda self: self.root / "sft")
    sft_base = property(lambda self: self.root / "sft" / "base")
    sft_adapter = property(lambda self: self.root / "sft" / "adapter")
    sft_metrics = property(lambda self: self.root / "sft" / "metrics.json")
    checkpoints = property(lambda self: self.root / "checkpoints")
    final = property(lambda self: self.root / "final")
    final_encoder = property(lambda self: self.root / "final" / "encoder")
    final_predictor = property(lambda self: self.root / "final" / "predictor.safetensors")
    final_predictor_config = property(lambda self: self.root / "final" / "predictor.json")
    pretrain_summary = property(lambda self: self.root / "pretrain_summary.json")
    logs = property(lambda self: self.root / "logs")
    embeddings = property(lambda self: self.root / "embeddings")
    eval = property(lambda self: self.root / "eval")
    report = property(lambda self: self.root / "report")
    demo_timings = property(lambda self: self.root / "demo_timings.json")
    stage_times_file = property(lambda self: self.root / "logs" / "stage_times.json")

    def eval_file(self, name: str) -> Path:
        return self.eval / f"{name}.json"

    def mimic_source(self, cfg: RunConfig) -> Path:
        """The MIMIC-IV the run extracts: data.mimic_dir, else the run's synthetic one."""
        return Path(cfg.data.mimic_dir) if cfg.data.mimic_dir else self.mimic

    def marker(self, stage: str, cfg: RunConfig) -> Path:
        """The file a stage writes last: it exists once the stage has completed."""
        return {"synth": self.mimic / "icu" / "icustays.csv.gz", "extract": cfg.data_path / "manifest.json",
                "sft": self.sft_metrics, "pretrain": self.final_predictor_config,
                "embed": self.embeddings / "fingerprint.json", "evaluate": self.eval_file("tasks"),
                "report": self.report / "manifest.json"}[stage]

    def done(self, stage: str, cfg: RunConfig) -> bool:
        """Completed, and not made stale by a later change of the run's settings."""
        return self.marker(stage, cfg).exists() and stage not in self.stale()

    def stale(self) -> list[str]:
        return list(read_json(self.changes_file).get("stale", [])) if self.changes_file.exists() else []

    def mark_done(self, stage: str) -> None:
        """A stage that has just completed under the current settings is no longer stale."""
        stale = self.stale()
        if stage in stale:
            changes = read_json(self.changes_file)
            changes["stale"] = [s for s in stale if s != stage]
            write_json(self.changes_file, changes)

    def stage_times(self) -> dict[str, dict[str, dict]]:
        """What each stage cost, over every launch: ``{"completed": {stage: t}, "unfinished":
        {stage: t}}`` with ``t = {"wall", "cpu", "attempts"}`` (seconds summed over the attempts:
        an interrupted or failed attempt counts towards the one that completes the stage; a
        stage rerun after it completed starts from zero). A resumed demo or ablation reports the
        stages it skips from here. An attempt killed without a chance to clean up (SIGKILL,
        power loss) is not counted."""
        times = read_json(self.stage_times_file) if self.stage_times_file.exists() else {}
        return {"completed": times.get("completed", {}), "unfinished": times.get("unfinished", {})}

    def record_stage_time(self, stage: str, wall: float, cpu: float, completed: bool) -> dict:
        """Add one attempt of ``stage`` to RUN/logs/stage_times.json (atomic); returns its entry."""
        times = self.stage_times()
        before = times["unfinished"].pop(stage, {"wall": 0.0, "cpu": 0.0, "attempts": 0})
        entry = {"wall": round(before["wall"] + wall, 2), "cpu": round(before["cpu"] + cpu, 2),
                 "attempts": before["attempts"] + 1}
        times["completed" if completed else "unfinished"][stage] = entry
        self.logs.mkdir(parents=True, exist_ok=True)
        write_json(self.stage_times_file, times)
        return entry

    # ------------------------------------------------------------------ config
    def exists(self) -> bool:
        return self.config_file.exists()

    def create(self, cfg: RunConfig) -> RunConfig:
        """Write the config of a new run (validated first; refuses an existing run with other
        settings: another process of the same launch may have created it a moment ago)."""
        cfg.validate()
        if self.exists():
            diff = self.differences(cfg)
            if diff:
                raise ValueError(f"{self.config_file} exists: {self.root} is already a run (with other "
                                 f"settings: {', '.join(diff)})")
            return self.load_config()
        self.root.mkdir(parents=True, exist_ok=True)
        self._write(cfg)
        return self.load_config()

    def load_config(self) -> RunConfig:
        """The run's config; a missing, invalid, empty or truncated file is an error naming it."""
        f = self.config_file
        if not f.exists():
            raise ValueError(f"{f} not found: {self.root} is not a clin-jepa run directory "
                             f"(create it with `clin-jepa demo --out DIR` or a stage's --run)")
        text = f.read_text()
        fix = "restore it (each checkpoint holds a copy: checkpoints/*/config.yaml) or start a new run"
        complete = bool(text.strip()) and text.rstrip().splitlines()[-1].strip() == CONFIG_END
        try:
            tree = yaml.safe_load(text)
        except yaml.YAMLError as e:
            why = "" if complete else f" and lacks its last line {CONFIG_END!r}: truncated?"
            raise ValueError(f"{f} is not valid YAML ({e}){why}; {fix}") from None
        if not tree:
            raise ValueError(f"{f} is empty; {fix}")
        if not isinstance(tree, dict):
            raise ValueError(f"{f} is not a mapping of config sections; {fix}")
        if not complete:
            missing = sorted(set(RunConfig().to_dict()) - set(tree) - {"run_dir"})
            raise ValueError(f"{f} is truncated (its last line is not {CONFIG_END!r}"
                             f"{'; missing sections ' + ', '.join(missing) if missing else ''}); {fix}")
        tree.pop("run_dir", None)
        for section, key in PATH_KEYS:
            value = (tree.get(section) or {}).get(key)
            if isinstance(value, str) and _is_path(section, key, value) and not Path(value).is_absolute():
                tree[section][key] = str(self.root / value)
        try:
            cfg = from_dict(RunConfig, tree).validate()
        except ValueError as e:
            raise ValueError(f"{f}: {e}") from None
        cfg.run_dir = str(self.root)
        return cfg

    def candidate(self, config: str | None, overrides: list[str]) -> RunConfig:
        """The settings --config/--set ask for: on top of the run's own when it exists."""
        if self.exists() and not config:
            tree = self.load_config().to_dict()
            cfg = load_config(None, overrides, **tree)
        else:
            cfg = load_config(config, overrides)
        cfg.run_dir = str(self.root)
        return absolute_paths(cfg)

    def differences(self, cfg: RunConfig) -> dict[str, tuple]:
        """{dotted key: (saved, given)} between the run's config and ``cfg``."""
        return diff_configs(self.load_config(), cfg)

    def change_config(self, cfg: RunConfig) -> dict[str, tuple]:
        """Replace the settings explicitly (already validated); records the change and the stages
        it makes stale (they are redone by `clin-jepa demo`; nothing is deleted)."""
        diff = self.differences(cfg)
        if not diff:
            return diff
        first = min(STAGES.index(KEY_STAGE.get(k, SECTION_STAGE.get(k.split(".")[0], "report"))) for k in diff)
        stale = [s for s in STAGES[first:] if self.marker(s, cfg).exists() or s in self.stale()]
        changes = read_json(self.changes_file) if self.changes_file.exists() else {"changes": [], "stale": []}
        changes["changes"].append({"changed": {k: list(v) for k, v in diff.items()}, "stale": stale})
        changes["stale"] = sorted(set(changes["stale"]) | set(stale), key=STAGES.index)
        write_json(self.changes_file, changes)
        self._write(cfg)
        if stale:
            log.warning("settings of %s changed (%s): outputs of %s were made with the old settings and are "
                        "stale until redone", self.root, ", ".join(diff), ", ".join(stale))
        return diff

    def _write(self, cfg: RunConfig) -> None:
        tree = cfg.to_dict()
        tree.pop("run_dir", None)
        for section, key in PATH_KEYS:
            value = tree[section][key]
            if _is_path(section, key, value):
                p = Path(value)
                tree[section][key] = p.relative_to(self.root).as_posix() if p.is_relative_to(self.root) else str(p)
        from clin_jepa.utils import atomic_path

        with atomic_path(self.config_file) as tmp:
            tmp.write_text(dump_config(tree) + CONFIG_END + "\n")

    # ------------------------------------------------------------------ models
    def load_sft_encoder(self, cfg: RunConfig, device=None):
        """The encoder after SFT (online = target = the SFT adapter), built from the run's files.
        ``device`` defaults to the current CUDA device when there is one, else the CPU."""
        from clin_jepa.models.encoder import build_encoder
        from clin_jepa.models.encoder_flavors import spec

        if device is None:
            import torch

            device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else "cpu"
        if not (self.sft_adapter / "adapter_model.safetensors").exists():
            raise FileNotFoundError(f"{self.sft_adapter}/adapter_model.safetensors not found; run "
                                    f"`clin-jepa sft --run {self.root}` first")
        own = spec(cfg.encoder.flavor)
        enc = build_encoder(cfg.encoder.flavor, cfg.encoder, device=device,
                            model_dir=self.sft_base if own.trainable_base else None,
                            tokenizer_dir=self.tokenizer if own.own_tokenizer else None)
        enc.load_adapter(self.sft_adapter, "online")
        enc.hard_sync()
        return enc

    def load_final_encoder(self, cfg: RunConfig, device=None):
        """The SFT encoder with the run's final online/target adapters."""
        if not (self.final_encoder / "online").is_dir():
            raise FileNotFoundError(f"{self.final_encoder}/online not found: train the run first "
                                    f"(`clin-jepa pretrain --run {self.root}`)")
        enc = self.load_sft_encoder(cfg, device)
        enc.load_adapters(self.final_encoder)
        return enc

    def load_latents(self, texts: list[str]):
        """(len(texts), D) float32 latents of ``texts`` from embeddings/ (written by `clin-jepa
        embed`): memory-mapped read-only when stored in that order (pages read on demand),
        else gathered in that order. Raises naming the command when a text has no latent."""
        import numpy as np
        import polars as pl

        out = self.embeddings
        if not (out / "latents.npy").exists() or not (out / "texts.parquet").exists():
            raise FileNotFoundError(f"{out}/latents.npy not found: run `clin-jepa embed --run {self.root}` first")
        try:
            latents = np.load(out / "latents.npy", mmap_mode="r")
            stored = pl.read_parquet(out / "texts.parquet")
        except Exception as e:  # noqa: BLE001 - truncated npy / parquet raise several kinds
            raise ValueError(f"{out} is unreadable ({e}); rerun `clin-jepa embed --run {self.root} --force`") from None
        if latents.ndim != 2 or latents.shape[0] != stored.height:
            raise ValueError(f"{out}: latents {latents.shape} do not match {stored.height} texts; "
                             f"rerun `clin-jepa embed --run {self.root} --force`")
        if stored["text"].to_list() == list(texts):
            return latents
        index = dict(zip(stored["text"].to_list(), stored["text_id"].to_list()))
        missing = sum(t not in index for t in texts)
        if missing:
            raise ValueError(f"{missing} texts have no embedding in {out} (the data changed, or the text mode or "
                             f"window changed); rerun `clin-jepa embed --run {self.root}`")
        if len(texts) == stored.height:  # the whole table in another order (a subset is gathered silently)
            log.warning("%s holds the texts in another order: gathered in memory (rerun `clin-jepa embed --run %s` "
                        "to memory-map it again)", out, self.root)
        rows = np.array([index[t] for t in texts])
        order = np.argsort(rows)  # sorted reads of the memory-mapped file
        gathered = np.empty((len(rows), latents.shape[1]), dtype=np.float32)
        gathered[order] = latents[rows[order]]
        return gathered

    def load_final_predictor(self):
        """The trained predictor from final/predictor.{json,safetensors}, in eval mode."""
        import json

        from safetensors.torch import load_file

        from clin_jepa.config import PredictorConfig
        from clin_jepa.models import build_predictor

        final = self.final
        if not self.final_predictor.exists() or not self.final_predictor_config.exists():
            raise FileNotFoundError(f"{self.final_predictor} not found: run `clin-jepa pretrain --run {self.root}`")
        try:
            pcfg = from_dict(PredictorConfig, json.loads(self.final_predictor_config.read_text()), "predictor")
            state = load_file(str(self.final_predictor))
        except Exception as e:  # noqa: BLE001 - truncated safetensors / bad json
            raise ValueError(f"{final} predictor files are unreadable ({e}); the run's final save is "
                             f"truncated: rerun `clin-jepa pretrain --run {self.root}`") from None
        pred = build_predictor(pcfg.flavor, pcfg)
        pred.load_state_dict(state)
        return pred.eval()


def absolute_paths(cfg: RunConfig) -> RunConfig:
    """Path settings resolved against the working directory, once, when they are given."""
    for section, key in PATH_KEYS:
        sec = getattr(cfg, section)
        if _is_path(section, key, getattr(sec, key)):
            setattr(sec, key, str(Path(getattr(sec, key)).expanduser().resolve()))
    return cfg


def diff_configs(a: RunConfig, b: RunConfig) -> dict[str, tuple]:
    """{dotted key: (a value, b value)} for every setting that differs (run_dir excluded)."""
    ta, tb = a.to_dict(), b.to_dict()
    out = {}
    for section in ta:
        if section == "run_dir":
            continue
        for k in sorted(set(ta[section]) | set(tb.get(section, {}))):
            if ta[section].get(k) != tb.get(section, {}).get(k):
                out[f"{section}.{k}"] = (ta[section].get(k), tb.get(section, {}).get(k))
    return out

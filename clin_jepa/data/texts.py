"""Hourly state/action texts and per-stay demographics texts (what the encoder reads).

Built with vectorised polars expressions (millions of stay-hours on full MIMIC-IV):

    state   "Hour 5. HR 88 bpm, SBP 121 mmHg; pH 7.38; GCS E4 V5 M6; Urine 60 mL; SOFA 3, KDIGO 0."
    action  "Norepinephrine 0.12 mcg/kg/min; invasive ventilation; antibiotics; fluid bolus 500 mL."
    demo    "Age 67, female, White, emergency admission, weight 80 kg."

Observations follow features.GROUP_ORDER (registry order within a group). Derived scores
(SOFA, KDIGO) are appended only to hours with an observation; an hour without one is
exactly NO_OBSERVATION, an hour without an intervention exactly NO_ACTION. No
identifiers or dates ever enter a text: only values, units and the hour index.

Two state-text modes (``TEXT_MODES``, chosen per run by ``data.text_mode``; the extraction
writes both, one file each, so runs of either mode share one data directory):

    events    what was charted in the hour (above; the paper's)
    snapshot  every variable's latest value so far in the stay with its age, every hour:
              "Hour 5. HR 88 bpm, SBP 121 mmHg (2 h ago); pH 7.38 (4 h ago); ...; SOFA 3, KDIGO 0."
              (no suffix = charted in this hour)

Action and demographics texts are the same in both modes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from clin_jepa.data import features

NO_OBSERVATION = "No new observations."
NO_ACTION = "No intervention."

# Vasopressor text names and rate decimals by canonical unit.
_VASO_DECIMALS = {"mcg/kg/min": 3, "units/hour": 2}
_DERIVED = (("sofa", "SOFA"), ("kdigo_stage", "KDIGO"))
_AGE_CAP = 90  # ages >= 90 are written "90+" (HIPAA: older ages identify)


def _num(col: str | pl.Expr, decimals: int) -> pl.Expr:
    """Compact number text: rounded to ``decimals``, no trailing zeros, no '-0'."""
    x = pl.col(col) if isinstance(col, str) else col
    x = x.cast(pl.Float64).round(decimals)
    x = pl.when(x == 0).then(pl.lit(0.0)).otherwise(x)  # -0.0 -> 0.0
    if decimals == 0:
        return x.cast(pl.Int64).cast(pl.String)
    s = x.cast(pl.String)
    # "7.50" -> "7.5", "7.0" -> "7"; only texts with a '.' and no exponent ("1e-05", "100")
    decimal = s.str.contains(".", literal=True) & ~s.str.contains("e", literal=True)
    return pl.when(decimal).then(s.str.strip_chars_end("0").str.strip_chars_end(".")).otherwise(s)


def _with_unit(value: pl.Expr, unit: str) -> pl.Expr:
    if not unit:
        return value
    sep = "" if unit.startswith(("/", "%")) else " "
    return value + pl.lit(sep + unit)


_AGE = "__age_"  # snapshot mode: column "__age_<c>" = hours since column c was last charted


def _aged(text: pl.Expr, column: str, aged: bool) -> pl.Expr:
    """``text`` + ' (N h ago)' when the value of ``column`` is N >= 1 hours old (snapshot mode)."""
    if not aged:
        return text
    age = pl.col(_AGE + column)
    return pl.when(age > 0).then(text + pl.lit(" (") + age.cast(pl.Int64).cast(pl.String) + pl.lit(" h ago)")
                                 ).otherwise(text)


def _observation(o: features.Observation, aged: bool = False) -> pl.Expr:
    """'HR 88 bpm' (GCS components: 'E4'), NULL when not observed; aged: 'HR 88 bpm (2 h ago)'."""
    value = _num(o.name, o.decimals)
    if o.group == "gcs":
        return _aged(pl.lit(o.text_label) + value, o.name, aged)
    return _aged(pl.lit(o.text_label + " ") + _with_unit(value, o.unit), o.name, aged)


def _columns(df: pl.DataFrame | pl.LazyFrame) -> list[str]:
    return df.collect_schema().names() if isinstance(df, pl.LazyFrame) else df.columns


def _require(df: pl.DataFrame | pl.LazyFrame, columns: tuple[str, ...] | list[str], what: str) -> None:
    have = _columns(df)
    missing = [c for c in columns if c not in have]
    if missing:
        raise ValueError(f"{what} lacks column(s) {', '.join(missing)} (has {', '.join(have)}); "
                         f"pass the hourly/static table written by `clin-jepa extract`")


def _nonempty(body: str) -> pl.Expr:
    return pl.when(pl.col(body) != "").then(pl.col(body))


def _group_bodies(aged: bool = False) -> dict[str, pl.Expr]:
    """Stage 1 of the state text: one column per observation group ('' when none)."""
    bodies = {}
    for g in features.GROUP_ORDER:
        obs = [o for o in features.OBSERVATIONS if o.group == g]
        if obs:
            sep = " " if g == "gcs" else ", "
            bodies[f"__g_{g}"] = pl.concat_str([_observation(o, aged) for o in obs], separator=sep,
                                               ignore_nulls=True)
    return bodies


def _state_expr(groups: list[str], has_scores: bool) -> pl.Expr:
    """Stage 2: the state text from the stage-1 group and score columns."""
    parts = [(pl.lit("GCS ") + pl.col(g)) if g == "__g_gcs" else pl.col(g) for g in groups]
    observed = pl.concat_str([pl.when(pl.col(g) != "").then(p) for g, p in zip(groups, parts)],
                             separator="; ", ignore_nulls=True)
    scores = (pl.when(pl.col("__scores") != "").then(pl.lit("; ") + pl.col("__scores")).otherwise(pl.lit(""))
              if has_scores else pl.lit(""))
    any_obs = pl.any_horizontal([pl.col(g) != "" for g in groups])
    return (pl.when(any_obs).then(pl.lit("Hour ") + pl.col("hour").cast(pl.String) + pl.lit(". ") + observed
                                  + scores + pl.lit("."))
            .otherwise(pl.lit(NO_OBSERVATION)))


def _capitalize(s: pl.Expr) -> pl.Expr:
    return s.str.slice(0, 1).str.to_uppercase() + s.str.slice(1)


def _action_body() -> pl.Expr:
    """Stage 1 of the action text: interventions joined by '; ' ('' when none)."""
    parts = []
    for v in features.VASOPRESSORS:
        rate = pl.col(v.name)
        name = v.name.capitalize()
        dose = pl.lit(name + " ") + _num(rate, _VASO_DECIMALS.get(v.unit, 2)) + pl.lit(" " + v.unit)
        # NULL rate = infusion running with an implausible charted rate: name it, no dose
        parts.append(pl.when(rate.is_null()).then(pl.lit(name))
                     .when(rate > 0).then(dose))
    parts.append(pl.when(pl.col("ventilation") == 1).then(pl.lit("invasive ventilation")))
    parts.append(pl.when(pl.col("rrt") == 1).then(pl.lit("renal replacement therapy")))
    parts.append(pl.when(pl.col("antibiotics") == 1).then(pl.lit("antibiotics")))
    fluid = pl.col("fluid_bolus_ml")
    parts.append(pl.when(fluid > 0).then(pl.lit("fluid bolus ") + _num(fluid, 0) + pl.lit(" mL")))
    return pl.concat_str(parts, separator="; ", ignore_nulls=True)


def hourly_texts(hourly: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame | pl.LazyFrame:
    """hourly.parquet rows -> [stay_id, hour, state_text, action_text], ``events`` mode (a
    LazyFrame in, a LazyFrame out; run_extraction feeds it batches of rows, extract.TEXT_BATCH_ROWS).

    Two stages: every piece used more than once (group bodies, scores, the action body)
    is computed once as a column first. As one nested expression the pieces were
    evaluated up to three times each (2.6x slower, benchmarks/bench_texts.py)."""
    _require(hourly, ("stay_id", "hour", *features.OBSERVATION_COLUMNS, *features.ACTION_COLUMNS),
             "hourly table")
    return _texts(hourly, aged=False)


def _texts(hourly: pl.DataFrame | pl.LazyFrame, aged: bool) -> pl.DataFrame | pl.LazyFrame:
    """The two stages of :func:`hourly_texts`; ``aged``: values carry their '__age_' column."""
    columns = _columns(hourly)
    derived = [_aged(pl.lit(label + " ") + _num(c, 0), c, aged) for c, label in _DERIVED if c in columns]
    bodies = _group_bodies(aged)
    stage1 = [pl.col("stay_id"), pl.col("hour"), *(e.alias(k) for k, e in bodies.items()),
              _action_body().alias("__action")]
    if derived:
        stage1.append(pl.concat_str(derived, separator=", ", ignore_nulls=True).alias("__scores"))
    action = pl.col("__action")
    return hourly.select(stage1).select(
        pl.col("stay_id"),
        pl.col("hour"),
        _state_expr(list(bodies), bool(derived)).alias("state_text"),
        pl.when(action == "").then(pl.lit(NO_ACTION)).otherwise(_capitalize(action) + pl.lit(".")).alias("action_text"),
    )


# --------------------------------------------------------------------------- #
# snapshot mode and the mode registry
# --------------------------------------------------------------------------- #


def snapshot_texts(hourly: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame | pl.LazyFrame:
    """hourly.parquet rows of WHOLE stays -> [stay_id, hour, state_text, action_text], ``snapshot``
    mode, sorted by (stay_id, hour): each state item (observations, SOFA, KDIGO) is its latest
    value at or before the hour (never a later one) with its age in hours; items never charted
    so far in the stay are left out, an hour before any is NO_OBSERVATION. The action text is
    :func:`hourly_texts`'. Batches that split a stay go through :class:`StayBatches`."""
    _require(hourly, ("stay_id", "hour", *features.OBSERVATION_COLUMNS, *features.ACTION_COLUMNS),
             "hourly table")
    state = [*features.OBSERVATION_COLUMNS, *(c for c, _ in _DERIVED if c in _columns(hourly))]
    carried = []
    for c in state:
        charted_at = pl.when(pl.col(c).is_not_null()).then(pl.col("hour"))
        carried += [pl.col(c).forward_fill().over("stay_id").alias(c),
                    (pl.col("hour") - charted_at.forward_fill().over("stay_id")).alias(_AGE + c)]
    return _texts(hourly.sort("stay_id", "hour").with_columns(carried), aged=True)


class StayBatches:
    """A whole-stay frame function (``snapshot_texts``) over consecutive batches of rows sorted
    by stay_id (extract._stream_texts cuts hourly.parquet every TEXT_BATCH_ROWS rows, also
    inside a stay): the rows of each batch's last stay are kept (one stay, <= max_stay_hours
    rows) and put before the next batch, so a stay's later hours see its earlier ones; their
    texts are returned once, with the batch that held them."""

    def __init__(self, fn: Callable[[pl.DataFrame], pl.DataFrame]):
        self.fn, self.tail = fn, None

    def __call__(self, batch: pl.DataFrame) -> pl.DataFrame:
        kept = 0
        if self.tail is not None and batch.height:
            last = self.tail["stay_id"][0]
            if batch["stay_id"].min() < last:
                raise ValueError("hourly rows are not sorted by stay_id across batches; snapshot texts carry "
                                 "values within a stay: rerun `clin-jepa extract` (it writes hourly.parquet sorted)")
            if batch["stay_id"][0] == last:
                kept = self.tail.height
                batch = pl.concat([self.tail, batch], how="vertical_relaxed")
        if batch.height:
            self.tail = batch.filter(pl.col("stay_id") == batch["stay_id"].max())
        return self.fn(batch).slice(kept)  # sorted by (stay, hour): the kept rows come first


@dataclass(frozen=True)
class TextMode:
    file: str  # data-directory parquet of this mode's hourly texts (stay_id, hour, state_text, action_text)
    build: Callable[[], Callable]  # a fresh batch function for extract._stream_texts
    description: str


TEXT_MODES: dict[str, TextMode] = {
    "events": TextMode("texts.parquet", lambda: hourly_texts, "what was charted in the hour (the paper's)"),
    "snapshot": TextMode("texts_snapshot.parquet", lambda: StayBatches(snapshot_texts),
                         "every item's latest value so far with its age (patient state)"),
}


def text_mode(name: str) -> TextMode:
    """The registered text mode ``name`` (data.text_mode), or an error listing the modes."""
    if name not in TEXT_MODES:
        raise ValueError(f"data.text_mode={name!r}: choose one of {', '.join(TEXT_MODES)} "
                         f"({'; '.join(f'{k}: {m.description}' for k, m in TEXT_MODES.items())})")
    return TEXT_MODES[name]


# --------------------------------------------------------------------------- #
# demographics
# --------------------------------------------------------------------------- #

_RACE_PREFIXES = (  # MIMIC-IV race strings -> coarse category (the text never copies free text)
    ("WHITE", "White"), ("BLACK", "Black"), ("HISPANIC", "Hispanic"), ("SOUTH AMERICAN", "Hispanic"),
    ("ASIAN", "Asian"), ("AMERICAN INDIAN", "American Indian"), ("NATIVE HAWAIIAN", "Pacific Islander"),
    ("MULTIPLE", "multiracial"), ("PORTUGUESE", "White"),
    ("UNKNOWN", None), ("UNABLE", None), ("PATIENT DECLINED", None), ("DECLINED", None),
)
_ADMISSION_TYPES = (  # MIMIC-IV admission_type -> text
    ("EMER", "emergency admission"), ("URGENT", "urgent admission"), ("ELECTIVE", "elective admission"),
    ("OBSERVATION", "observation admission"), ("SURGICAL SAME DAY", "same-day surgical admission"),
)


def _map_prefix(col: str, table: tuple[tuple[str, str | None], ...], default: str | None,
                contains: bool = False) -> pl.Expr:
    s = pl.col(col).cast(pl.String).str.to_uppercase().str.strip_chars()
    expr = pl.when(s.is_null()).then(pl.lit(None, pl.String))
    for key, out in table:
        cond = s.str.contains(key, literal=True) if contains else s.str.starts_with(key)
        expr = expr.when(cond).then(pl.lit(out, pl.String))
    return expr.otherwise(pl.lit(default, pl.String))


def demographics_texts(static: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame | pl.LazyFrame:
    """static.parquet rows -> DataFrame[stay_id, demo_text]."""
    _require(static, ("stay_id", "age", "sex", "race", "admission_type", "weight_kg"), "static table")
    age = pl.col("age").cast(pl.Int64)
    age_text = (pl.when(age >= _AGE_CAP).then(pl.lit(f"Age {_AGE_CAP}+"))
                .when(age.is_not_null()).then(pl.lit("Age ") + age.cast(pl.String)))
    sex = pl.when(pl.col("sex").is_in(["female", "male"])).then(pl.col("sex"))
    parts = [
        age_text,
        sex,
        _map_prefix("race", _RACE_PREFIXES, "other race"),
        _map_prefix("admission_type", _ADMISSION_TYPES, "other admission", contains=True),
        pl.when(pl.col("weight_kg").is_not_null()).then(pl.lit("weight ") + _num("weight_kg", 0) + pl.lit(" kg")),
    ]
    body = pl.concat_str(parts, separator=", ", ignore_nulls=True)
    text = pl.when(body == "").then(pl.lit("Unknown demographics.")).otherwise(_capitalize(body) + pl.lit("."))
    return static.select(pl.col("stay_id"), text.alias("demo_text"))


# --------------------------------------------------------------------------- #
# single-row helpers (same code path as the frame functions)
# --------------------------------------------------------------------------- #


def _one(row: dict, columns: tuple[str, ...]) -> pl.DataFrame:
    data = {c: [row.get(c)] for c in columns}
    schema = {c: (pl.Float64 if c not in ("stay_id", "hour", "sex", "race", "admission_type") else None)
              for c in columns}
    return pl.DataFrame(data, schema_overrides={k: v for k, v in schema.items() if v is not None})


def state_text(row: dict) -> str:
    cols = ("stay_id", "hour", *features.OBSERVATION_COLUMNS, *features.ACTION_COLUMNS,
            *(c for c, _ in _DERIVED if c in row))
    return hourly_texts(_one({"stay_id": 0, **row}, cols))["state_text"][0]


def action_text(row: dict) -> str:
    cols = ("stay_id", "hour", *features.OBSERVATION_COLUMNS, *features.ACTION_COLUMNS)
    base = {"stay_id": 0, "hour": 0, **{c: 0.0 for c in features.ACTION_COLUMNS}}
    return hourly_texts(_one(base | row, cols))["action_text"][0]


def demographics_text(row: dict) -> str:
    cols = ("stay_id", "age", "sex", "race", "admission_type", "weight_kg")
    return demographics_texts(_one({"stay_id": 0, **row}, cols))["demo_text"][0]

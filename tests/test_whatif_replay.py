"""Counterfactual replay of synthetic stays (clin_jepa.data.synth_replay): the factual policy
reproduces the generated stays exactly; a treatment override changes only the treated stays,
from hour K on, in the direction the simulator's physiology says."""

from __future__ import annotations

import numpy as np
import pytest

from clin_jepa.config import SynthConfig
from clin_jepa.data import synth_replay as sr
from clin_jepa.data.synth import population

CFG = SynthConfig(stays=150, seed=3)


@pytest.fixture(scope="module")
def original():
    pop = population(CFG)
    return pop, sr.original_chunk(CFG, 0, pop)


def _arrays(w):
    return {f"{g}.{k}": v for g in ("hourly", "vitals", "labs") for k, v in getattr(w, g).items()}


def test_factual_replay_reproduces_the_generated_stays_exactly(original):
    pop, w0 = original
    los = w0.stay["los_h"]
    chosen = np.array([3, 17, 40, 99])
    w1 = sr.replay_chunk(CFG, 0, los, chosen, np.full(4, 6), (), pop)  # the factual policy: no override
    hours = np.ceil(los).astype(int)
    a0, a1 = _arrays(w0), _arrays(w1)
    assert set(a0) == set(a1)
    for k in a0:
        for i in range(w0.n):  # every stay, every hour it was in the ICU
            np.testing.assert_array_equal(a0[k][i, : hours[i]], a1[k][i, : hours[i]], err_msg=k)
    for k in ("primary", "regime0", "sev_max", "sev_end", "weight", "los_h"):
        np.testing.assert_array_equal(w0.stay[k], w1.stay[k], err_msg=k)


def test_override_changes_only_the_treated_stays_from_hour_k(original):
    pop, w0 = original
    los = w0.stay["los_h"]
    long = np.flatnonzero(los > 30)[:6]
    K = 10
    none = (sr.Override("ne1", 0.0), sr.Override("vaso", 0.0), sr.Override("epi", 0.0))
    high = (sr.Override("ne1", 0.3), sr.Override("vaso", 0.0), sr.Override("epi", 0.0))
    w_none = sr.replay_chunk(CFG, 0, los, long, np.full(len(long), K), none, pop)
    w_high = sr.replay_chunk(CFG, 0, los, long, np.full(len(long), K), high, pop)
    others = np.setdiff1d(np.arange(w0.n), long)
    for w in (w_none, w_high):
        # stays not chosen keep their factual trajectory; the chosen ones up to hour K
        np.testing.assert_array_equal(w.labs["lactate"][others], w0.labs["lactate"][others][:, : w.hours])
        np.testing.assert_array_equal(w.labs["lactate"][long, :K], w0.labs["lactate"][long, :K])
    assert (w_high.hourly["ne1"][long, K:30] == pytest.approx(0.3))
    assert (w_none.hourly["ne1"][long, K:30] == 0).all()
    # norepinephrine raises MAP by the simulator's saturating dose effect (~+29 mmHg at 0.3)
    d = w_high.vitals["mbp"][long, K:30] - w_none.vitals["mbp"][long, K:30]
    assert np.nanmean(d) > 15


def test_counterfactuals_api_and_unknown_stays():
    pop = population(CFG)
    ids = pop["stay_ids"][[5, 7, 120]]
    out = sr.counterfactuals(CFG, ids, 4, 8, {"factual": (), "vent": (sr.Override("vent", 1.0),)})
    assert set(out) == {"factual", "vent"} and out["vent"]["spo2"].shape == (3, 8)
    w0 = sr.original_chunk(CFG, 0, pop)
    inside = (4 + np.arange(8))[None, :] < np.ceil(w0.stay["los_h"][[5, 7, 120]])[:, None]
    np.testing.assert_array_equal(np.where(inside, w0.labs["ph"][[5, 7, 120], 4:12], np.nan), out["factual"]["ph"])
    with pytest.raises(ValueError, match="not stays of the synthetic MIMIC-IV"):
        sr.locate(CFG, np.array([1, 2]))
    with pytest.raises(ValueError, match="the simulator's treatments are"):
        sr.Override("dobutamine", 1.0)

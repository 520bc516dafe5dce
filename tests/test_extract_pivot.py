"""hourly_base pivots each measurement table with its own features only: it must equal
the plain pivot of all observations (every feature looked up in the union of the three
long tables), so no feature a table holds is left out."""

from __future__ import annotations

from clin_jepa.config import DataConfig
from clin_jepa.data import features
from clin_jepa.data.extract import build_database


def test_hourly_base_equals_the_pivot_of_the_union(synth_mimic_dir):
    con = build_database(synth_mimic_dir, DataConfig(duckdb_memory_limit="1GB", duckdb_threads=2),
                         until="hourly_base")
    cols = features.OBSERVATION_COLUMNS
    pivot = ", ".join(f"max(value) FILTER (WHERE feature = '{c}') AS {c}" for c in cols)
    con.execute(f"""CREATE TABLE reference AS
        WITH obs AS (SELECT stay_id, hour, feature, value FROM vitals_hourly
                     UNION ALL SELECT stay_id, hour, feature, value FROM labs_hourly
                     UNION ALL SELECT stay_id, hour, feature, value FROM urine_hourly)
        SELECT g.stay_id, g.hour, {', '.join('p.' + c for c in cols)}
        FROM grid g LEFT JOIN (SELECT stay_id, hour, {pivot} FROM obs GROUP BY stay_id, hour) p
          ON p.stay_id = g.stay_id AND p.hour = g.hour""")
    mine = f"SELECT stay_id, hour, {', '.join(cols)} FROM hourly_base"
    n = con.execute("SELECT count(*) FROM hourly_base").fetchall()[0][0]
    assert n > 1000
    assert con.execute(f"SELECT count(*) FROM ({mine} EXCEPT ALL SELECT * FROM reference)").fetchall()[0][0] == 0
    assert con.execute(f"SELECT count(*) FROM (SELECT * FROM reference EXCEPT ALL {mine})").fetchall()[0][0] == 0
    known = {r[0] for r in con.execute("""SELECT DISTINCT feature FROM vitals_hourly UNION
        SELECT DISTINCT feature FROM labs_hourly UNION SELECT DISTINCT feature FROM urine_hourly""").fetchall()}
    assert known <= set(cols) and len(known) >= 20  # the data exercises (almost) every feature

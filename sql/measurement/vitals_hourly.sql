-- vitals_hourly: hourly chartevents observations of every cohort stay, long form.
-- Features: registry_items with source 'chartevents' (vitals: heart rate 220045, BP
-- 220179/220050, 220180/220051, 220181/220052/225312, RR 220210/224690, SpO2 220277,
-- temperature 223762 / 223761 (F -> C); FiO2 223835; GCS 220739/223900/223901).
-- Conversion: value = valuenum * mul + add (F -> C); FiO2 values <= 1 are fractions (x100).
-- Range: a converted value outside the registry's [lo, hi] becomes NULL BEFORE aggregation
-- (counted in n_out_of_range); a non-numeric valuenum is NULL too (n_non_numeric).
-- Intubated patients: a GCS verbal charted as value 'No Response-ETT' (valuenum 1 in
-- MIMIC-IV) is not a verbal score of 1; it is left out of gcs_verbal here (the GCS used
-- by SOFA handles it, gcs_hourly.sql; the ventilation column shows the tube).
-- Aggregation per registry_features.agg: mean (vitals, FiO2) or min (GCS: worst in the
-- hour); is_min is constant per feature (any_value). Grouped on a SMALLINT feature id.
-- Columns: stay_id, hour, feature, value (feature's unit, NULL = no valid value),
--          n_non_numeric, n_out_of_range. Only hours inside the grid.
CREATE TABLE vitals_hourly AS
WITH stays AS (
    SELECT g.stay_id, any_value(d.intime) AS intime, max(g.hour) + 1 AS n_hours
    FROM grid g JOIN icustay_detail d ON d.stay_id = g.stay_id
    GROUP BY g.stay_id
),
items AS (
    SELECT r.itemid, f.fid, f.agg = 'min' AS is_min, r.mul, r.add, r.frac_to_pct, r.lo, r.hi
    FROM registry_items r JOIN registry_features f ON f.feature = r.feature
    WHERE r.source = 'chartevents' AND f.agg IN ('mean', 'min')
),
events AS (
    SELECT
        ce.stay_id,
        i.fid,
        i.is_min,
        i.lo,
        i.hi,
        ce.valuenum_raw IS NOT NULL AS non_numeric,
        CAST(floor(date_diff('second', s.intime, ce.charttime) / 3600.0) AS INTEGER) AS hour,
        s.n_hours,
        CASE WHEN i.frac_to_pct AND ce.valuenum <= 1 THEN ce.valuenum * 100
             ELSE ce.valuenum * i.mul + i.add END AS v
    FROM chartevents ce
    JOIN items i ON i.itemid = ce.itemid
    JOIN stays s ON s.stay_id = ce.stay_id
    WHERE ce.charttime >= s.intime
      AND ce.value IS DISTINCT FROM 'No Response-ETT'
),
valid AS (
    SELECT *, CASE WHEN v BETWEEN lo AND hi THEN v END AS vv
    FROM events WHERE hour < n_hours
),
agg AS (
    SELECT
        stay_id,
        hour,
        fid,
        CASE WHEN any_value(is_min) THEN min(vv) ELSE avg(vv) END AS value,
        CAST(count(*) FILTER (WHERE non_numeric) AS INTEGER) AS n_non_numeric,
        CAST(count(*) FILTER (WHERE v IS NOT NULL AND vv IS NULL) AS INTEGER) AS n_out_of_range
    FROM valid
    GROUP BY stay_id, hour, fid
)
SELECT a.stay_id, a.hour, f.feature, round(a.value, 6) AS value, a.n_non_numeric, a.n_out_of_range
FROM agg a JOIN registry_features f ON f.fid = a.fid;

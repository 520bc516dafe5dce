-- vitals_hourly: hourly chartevents observations of every cohort stay, long form.
-- Features: registry_items with source 'chartevents' (vitals: heart rate 220045, BP
-- 220179/220050, 220180/220051, 220181/220052/225312, RR 220210/224690, SpO2 220277,
-- temperature 223762 / 223761 (F -> C); FiO2 223835; GCS 220739/223900/223901).
-- Conversion: value = valuenum * mul + add (F -> C); FiO2 values <= 1 are fractions (x100).
-- Range: a converted value outside the registry's [lo, hi] becomes NULL BEFORE aggregation
-- (counted in n_out_of_range); a non-numeric valuenum is NULL too (n_non_numeric).
-- Aggregation per registry `agg`: mean (vitals, FiO2; Kahan sum / count), min (GCS: worst).
-- Columns: stay_id, hour, feature, value (feature's unit, NULL = no valid value),
--          n_non_numeric, n_out_of_range. Only hours inside the grid.
CREATE TABLE vitals_hourly AS
WITH stays AS (
    SELECT g.stay_id, any_value(d.intime) AS intime, max(g.hour) + 1 AS n_hours
    FROM grid g JOIN icustay_detail d ON d.stay_id = g.stay_id
    GROUP BY g.stay_id
),
items AS (
    SELECT itemid, feature, agg, mul, add, frac_to_pct, lo, hi
    FROM registry_items WHERE source = 'chartevents'
),
events AS (
    SELECT
        ce.stay_id,
        i.feature,
        i.agg,
        i.lo,
        i.hi,
        ce.valuenum,
        ce.valuenum_raw,
        CAST(floor(date_diff('second', s.intime, ce.charttime) / 3600.0) AS INTEGER) AS hour,
        s.n_hours,
        CASE WHEN i.frac_to_pct AND ce.valuenum <= 1 THEN ce.valuenum * 100
             ELSE ce.valuenum * i.mul + i.add END AS v
    FROM chartevents ce
    JOIN items i ON i.itemid = ce.itemid
    JOIN stays s ON s.stay_id = ce.stay_id
    WHERE ce.charttime >= s.intime
),
valid AS (
    SELECT *, CASE WHEN v BETWEEN lo AND hi THEN v END AS vv
    FROM events WHERE hour < n_hours
)
SELECT
    stay_id,
    hour,
    feature,
    round(CASE any_value(agg)
              WHEN 'mean' THEN fsum(vv) / nullif(count(vv), 0)
              WHEN 'min' THEN min(vv)
              WHEN 'max' THEN max(vv)
          END, 6) AS value,
    count(*) FILTER (WHERE valuenum IS NULL AND valuenum_raw IS NOT NULL) AS n_non_numeric,
    count(*) FILTER (WHERE v IS NOT NULL AND vv IS NULL) AS n_out_of_range
FROM valid
GROUP BY stay_id, hour, feature;

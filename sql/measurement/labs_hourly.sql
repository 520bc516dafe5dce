-- labs_hourly: hourly laboratory values (hosp/labevents) of every cohort stay, long form.
-- Features: registry_items with source 'labevents' (blood gas pH 50820, pO2 50821,
-- pCO2 50818, lactate 50813; chemistry sodium 50983, potassium 50971, chloride 50902,
-- bicarbonate 50882, BUN 51006, creatinine 50912, glucose 50931, bilirubin 50885;
-- haematology hemoglobin 51222, platelets 51265, WBC 51301, INR 51237).
-- Mapping: labevents have no stay_id; a lab belongs to the cohort stay of the same
-- hadm_id whose grid contains its charttime. Labs drawn up to
-- getvariable('lab_lookback_hours') before intime count in hour 0 (default 6 h, as mimic-code's
-- first-day tables: intime - 6 h).
-- Range: outside the registry's [lo, hi] -> NULL before aggregation (n_out_of_range).
-- Aggregation per registry_features.agg: last (latest valid value in the hour; equal
-- charttimes -> the larger value, so the result never depends on row order).
-- Columns: stay_id, hour, feature, value, n_non_numeric, n_out_of_range.
CREATE TABLE labs_hourly AS
WITH stays AS (
    SELECT g.stay_id, any_value(c.hadm_id) AS hadm_id, any_value(d.intime) AS intime,
           max(g.hour) + 1 AS n_hours
    FROM grid g
    JOIN cohort c ON c.stay_id = g.stay_id
    JOIN icustay_detail d ON d.stay_id = g.stay_id
    GROUP BY g.stay_id
),
items AS (
    SELECT r.itemid, f.fid, r.mul, r.add, r.lo, r.hi
    FROM registry_items r JOIN registry_features f ON f.feature = r.feature
    WHERE r.source = 'labevents' AND f.agg = 'last'
),
events AS (
    SELECT
        s.stay_id,
        i.fid,
        i.lo,
        i.hi,
        le.charttime,
        le.valuenum_raw IS NOT NULL AS non_numeric,
        CAST(greatest(0, floor(date_diff('second', s.intime, le.charttime) / 3600.0)) AS INTEGER) AS hour,
        s.n_hours,
        le.valuenum * i.mul + i.add AS v
    FROM labevents le
    JOIN items i ON i.itemid = le.itemid
    JOIN stays s ON s.hadm_id = le.hadm_id
    WHERE le.charttime >= s.intime - to_seconds(CAST(getvariable('lab_lookback_hours') * 3600 AS BIGINT))
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
        arg_max(vv, (charttime, vv)) FILTER (WHERE vv IS NOT NULL) AS value,
        CAST(count(*) FILTER (WHERE non_numeric) AS INTEGER) AS n_non_numeric,
        CAST(count(*) FILTER (WHERE v IS NOT NULL AND vv IS NULL) AS INTEGER) AS n_out_of_range
    FROM valid
    GROUP BY stay_id, hour, fid
)
SELECT a.stay_id, a.hour, f.feature, round(a.value, 6) AS value, a.n_non_numeric, a.n_out_of_range
FROM agg a JOIN registry_features f ON f.fid = a.fid;

-- labs_hourly: hourly laboratory values (hosp/labevents) of every cohort stay, long form.
-- Features: registry_items with source 'labevents' (blood gas pH 50820, pO2 50821,
-- pCO2 50818, lactate 50813; chemistry sodium 50983, potassium 50971, chloride 50902,
-- bicarbonate 50882, BUN 51006, creatinine 50912, glucose 50931, bilirubin 50885;
-- haematology hemoglobin 51222, platelets 51265, WBC 51301, INR 51237).
-- Mapping: labevents have no stay_id; a lab belongs to the cohort stay of the same
-- hadm_id whose grid contains its charttime. Labs drawn up to
-- getvariable('lab_lookback_hours') before intime count in hour 0 (default 0: none).
-- Range: outside the registry's [lo, hi] -> NULL before aggregation (n_out_of_range).
-- Aggregation per registry `agg`: last (latest charttime in the hour; ties -> larger value).
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
    SELECT itemid, feature, agg, mul, add, lo, hi
    FROM registry_items WHERE source = 'labevents'
),
events AS (
    SELECT
        s.stay_id,
        i.feature,
        i.agg,
        i.lo,
        i.hi,
        le.charttime,
        le.valuenum,
        le.valuenum_raw,
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
)
SELECT
    stay_id,
    hour,
    feature,
    round(CASE any_value(agg)
              WHEN 'last' THEN arg_max(vv, (charttime, vv)) FILTER (WHERE vv IS NOT NULL)
              WHEN 'mean' THEN fsum(vv) / nullif(count(vv), 0)
              WHEN 'min' THEN min(vv)
              WHEN 'max' THEN max(vv)
          END, 6) AS value,
    count(*) FILTER (WHERE valuenum IS NULL AND valuenum_raw IS NOT NULL) AS n_non_numeric,
    count(*) FILTER (WHERE v IS NOT NULL AND vv IS NULL) AS n_out_of_range
FROM valid
GROUP BY stay_id, hour, feature;

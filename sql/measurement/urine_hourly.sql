-- urine_hourly: hourly urine output (icu/outputevents) of every cohort stay, long form.
-- Items: registry feature 'urine_output' (Foley 226559, Void 226560, Condom Cath 226561,
-- Ileoconduit 226584, Suprapubic 226563, R/L Nephrostomy 226564/226565, Straight Cath
-- 226567, R/L Ureteral Stent 226557/226558, GU Irrigant/Urine Volume Out 227489) in mL;
-- GU Irrigant Volume In 227488 has sign -1 (subtracted, as mimic-code's urine_output).
-- Range: each charted volume outside [lo, hi] mL -> NULL before summing (n_out_of_range).
-- Aggregation (registry_features.agg = 'sum'): sum of sign * volume in the hour (mL; may
-- be negative when more irrigant went in than came out, as in mimic-code).
-- Columns: stay_id, hour, feature, value, n_non_numeric, n_out_of_range.
CREATE TABLE urine_hourly AS
WITH stays AS (
    SELECT g.stay_id, any_value(d.intime) AS intime, max(g.hour) + 1 AS n_hours
    FROM grid g JOIN icustay_detail d ON d.stay_id = g.stay_id
    GROUP BY g.stay_id
),
items AS (
    SELECT r.itemid, f.fid, r.mul, r.add, r.sign, r.lo, r.hi
    FROM registry_items r JOIN registry_features f ON f.feature = r.feature
    WHERE r.source = 'outputevents' AND f.agg = 'sum'
),
events AS (
    SELECT
        oe.stay_id,
        i.fid,
        i.sign,
        i.lo,
        i.hi,
        oe.value_raw IS NOT NULL AS non_numeric,
        CAST(floor(date_diff('second', s.intime, oe.charttime) / 3600.0) AS INTEGER) AS hour,
        s.n_hours,
        oe.value * i.mul + i.add AS v
    FROM outputevents oe
    JOIN items i ON i.itemid = oe.itemid
    JOIN stays s ON s.stay_id = oe.stay_id
    WHERE oe.charttime >= s.intime
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
        fsum(sign * vv) AS value,
        CAST(count(*) FILTER (WHERE non_numeric) AS INTEGER) AS n_non_numeric,
        CAST(count(*) FILTER (WHERE v IS NOT NULL AND vv IS NULL) AS INTEGER) AS n_out_of_range
    FROM valid
    GROUP BY stay_id, hour, fid
)
SELECT a.stay_id, a.hour, f.feature, round(a.value, 6) AS value, a.n_non_numeric, a.n_out_of_range
FROM agg a JOIN registry_features f ON f.fid = a.fid;

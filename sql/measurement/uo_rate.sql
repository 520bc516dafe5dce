-- uo_rate: urine output over the real time between chartings, one row per urine charting
-- time of each cohort stay, as MIT-LCP mimic-code kdigo_uo.sql (KDIGO) and
-- urine_output_rate.sql (SOFA renal).
-- Urine of a charting time = sum of sign x volume of the registry 'urine_output' items
-- (icu/outputevents; GU irrigant in subtracted), values outside the registry range
-- ignored, chartings from ICU intime on, inside the stay's grid.
--   gap_h       hours since the stay's previous urine charting; the first charting: 1 h
--               (kdigo_uo) -- gap_icu_h: hours since ICU intime instead (urine_output_rate
--               counts from the first heart rate, about intime)
--   vol_W, tm_W (W = 6, 12, 24): urine (mL) and the sum of gap_h over the chartings in
--               [t - W h, t] (kdigo_uo's RANGE frames), i.e. the time that urine was
--               collected over
--   vol_sofa, tm_sofa: the same over [t - 23 h, t] with gap_icu_h (urine_output_rate)
--   weight_kg   the weight known at t (latest `weight` with known_from <= t; else the
--               stay's admission weight); NULL when none: no KDIGO urine stage, as
--               mimic-code
-- Columns: stay_id, charttime, hour, t_h (hours since intime), urine (mL), vol_6/12/24, tm_6/12/24 (h), vol_sofa,
-- tm_sofa, weight_kg.
CREATE TABLE uo_rate AS
WITH stays AS (
    SELECT g.stay_id, any_value(d.intime) AS intime, max(g.hour) + 1 AS n_hours
    FROM grid g JOIN icustay_detail d ON d.stay_id = g.stay_id
    GROUP BY g.stay_id
),
items AS (
    SELECT itemid, sign, mul, add, lo, hi FROM registry_items WHERE feature = 'urine_output'
),
charted AS (
    SELECT oe.stay_id, oe.charttime, any_value(s.intime) AS intime,
           fsum(i.sign * CASE WHEN oe.value * i.mul + i.add BETWEEN i.lo AND i.hi
                              THEN oe.value * i.mul + i.add END) AS urine
    FROM outputevents oe
    JOIN items i ON i.itemid = oe.itemid
    JOIN stays s ON s.stay_id = oe.stay_id
    WHERE oe.charttime >= s.intime
      AND date_diff('second', s.intime, oe.charttime) < s.n_hours * 3600
    GROUP BY oe.stay_id, oe.charttime
    HAVING count(CASE WHEN oe.value * i.mul + i.add BETWEEN i.lo AND i.hi THEN 1 END) > 0
),
gaps AS (
    SELECT
        *,
        coalesce(date_diff('second', lag(charttime) OVER w, charttime) / 3600.0, 1.0) AS gap_h,
        date_diff('second', coalesce(lag(charttime) OVER w, intime), charttime) / 3600.0 AS gap_icu_h
    FROM charted
    WINDOW w AS (PARTITION BY stay_id ORDER BY charttime)
),
windows AS (
    SELECT
        stay_id, charttime, intime, urine,
        sum(urine) OVER w6 AS vol_6, sum(gap_h) OVER w6 AS tm_6,
        sum(urine) OVER w12 AS vol_12, sum(gap_h) OVER w12 AS tm_12,
        sum(urine) OVER w24 AS vol_24, sum(gap_h) OVER w24 AS tm_24,
        sum(urine) OVER w23 AS vol_sofa, sum(gap_icu_h) OVER w23 AS tm_sofa
    FROM gaps
    WINDOW
        w6 AS (PARTITION BY stay_id ORDER BY charttime RANGE BETWEEN INTERVAL 6 HOUR PRECEDING AND CURRENT ROW),
        w12 AS (PARTITION BY stay_id ORDER BY charttime RANGE BETWEEN INTERVAL 12 HOUR PRECEDING AND CURRENT ROW),
        w24 AS (PARTITION BY stay_id ORDER BY charttime RANGE BETWEEN INTERVAL 24 HOUR PRECEDING AND CURRENT ROW),
        w23 AS (PARTITION BY stay_id ORDER BY charttime RANGE BETWEEN INTERVAL 23 HOUR PRECEDING AND CURRENT ROW)
),
admission_weight AS (
    SELECT stay_id, any_value(weight_kg) AS kg FROM weight WHERE admission GROUP BY stay_id
),
weighed AS (  -- the latest weight known at the charting (ASOF: largest known_from <= t)
    SELECT w.*, x.weight_kg AS kg_known, a.kg AS kg_admit
    FROM windows w
    ASOF LEFT JOIN weight x ON x.stay_id = w.stay_id AND x.known_from <= w.charttime
    LEFT JOIN admission_weight a ON a.stay_id = w.stay_id
)
SELECT
    stay_id, charttime,
    CAST(floor(date_diff('second', intime, charttime) / 3600.0) AS INTEGER) AS hour,
    date_diff('second', intime, charttime) / 3600.0 AS t_h,
    urine, vol_6, tm_6, vol_12, tm_12, vol_24, tm_24, vol_sofa, tm_sofa,
    coalesce(kg_known, kg_admit) AS weight_kg
FROM weighed;

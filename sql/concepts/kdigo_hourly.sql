-- kdigo_hourly: KDIGO acute kidney injury stage (0-3), one row per stay-hour of hourly_base.
--
-- kdigo_stage = max(creatinine stage, urine-output stage, RRT stage), as mimic-code
-- kdigo_stages.sql (without its 6 h smoothing: the stage of the hour itself).
--
-- Creatinine (mg/dL). Each creatinine value is staged against the values strictly before
-- it: the lowest in the previous 48 h and the lowest in the previous 7 days, counting the
-- 7 days before ICU admission (hosp/labevents 50912, valid range from registry_items) and
-- the ICU hours of hourly_base:
--   3  if cr >= 3.0 x low_7d, or cr >= 4.0 with an acute rise (low_48h <= 3.7 or
--      cr >= 1.5 x low_7d)
--   2  if cr >= 2.0 x low_7d
--   1  if cr >= low_48h + 0.3, or cr >= 1.5 x low_7d
--   0  otherwise (also the first value ever, which has no baseline).
-- The stage of a value holds for the following hours until the next creatinine value.
--
-- Urine output (mL/kg/h). Rates over the last 6, 12 and 24 h = summed urine_output
-- (mL) / weight (kg) / window (h); weight from static.weight_kg, 80 kg when not charted.
-- A window counts only when it lies inside the stay and urine was already charted at its
-- first hour (the first urine of the stay at hour <= h-W+1); uncharted hours inside it
-- count as 0 mL.
--   3  if rate_24h < 0.3, or rate_12h = 0 (anuria for 12 h)
--   2  if rate_12h < 0.5
--   1  if rate_6h < 0.5
-- Renal replacement therapy running in the hour (hourly_base.rrt = 1) -> 3.
--
-- References: KDIGO Clinical Practice Guideline for Acute Kidney Injury, Kidney Int
-- Suppl 2012;2:1-138; MIT-LCP mimic-code mimic-iv/concepts/organfailure/kdigo_creatinine,
-- kdigo_uo, kdigo_stages.
-- Columns: stay_id, hour, creat_stage, uo_stage, rrt_stage, kdigo_stage (all TINYINT 0-3).
CREATE OR REPLACE TABLE kdigo_hourly AS
WITH creat_range AS (
    SELECT min(lo) AS lo, max(hi) AS hi
    FROM registry_items
    WHERE feature = 'creatinine'
),
creat_pre_icu AS (  -- creatinine of the 7 days before ICU admission; hour < 0
    SELECT
        d.stay_id,
        CAST(floor((epoch(l.charttime) - epoch(d.intime)) / 3600.0) AS INTEGER) AS hour,
        l.valuenum AS creat
    FROM labevents l
    JOIN icustay_detail d ON l.subject_id = d.subject_id
    JOIN cohort c ON c.stay_id = d.stay_id
    CROSS JOIN creat_range r
    WHERE l.itemid = 50912                               -- Creatinine (mg/dL)
      AND l.charttime >= d.intime - INTERVAL 7 DAY
      AND l.charttime < d.intime
      AND l.valuenum BETWEEN r.lo AND r.hi
),
creat_all AS (
    SELECT stay_id, hour, creat FROM creat_pre_icu
    UNION ALL
    SELECT stay_id, hour, creatinine AS creat FROM hourly_base WHERE creatinine IS NOT NULL
),
creat_baseline AS (
    SELECT
        stay_id, hour, creat,
        min(creat) OVER (PARTITION BY stay_id ORDER BY hour
                         RANGE BETWEEN 48 PRECEDING AND 1 PRECEDING) AS low_48h,
        min(creat) OVER (PARTITION BY stay_id ORDER BY hour
                         RANGE BETWEEN 168 PRECEDING AND 1 PRECEDING) AS low_7d
    FROM creat_all
),
creat_staged AS (  -- one stage per ICU creatinine value
    SELECT
        stay_id, hour,
        CASE
            WHEN creat >= 3.0 * low_7d THEN 3
            WHEN creat >= 4.0 AND (low_48h <= 3.7 OR creat >= 1.5 * low_7d) THEN 3
            WHEN creat >= 2.0 * low_7d THEN 2
            WHEN creat >= low_48h + 0.3 THEN 1
            WHEN creat >= 1.5 * low_7d THEN 1
            ELSE 0
        END AS stage
    FROM creat_baseline
    WHERE hour >= 0
),
uo AS (
    SELECT
        b.stay_id, b.hour, b.rrt, c.stage AS creat_stage_at_hour,
        coalesce(s.weight_kg, 80.0) AS weight_kg,                      -- kg, 80 when missing
        sum(b.urine_output) OVER w6 AS uo_6h,                          -- mL
        sum(b.urine_output) OVER w12 AS uo_12h,
        sum(b.urine_output) OVER w24 AS uo_24h,
        min(b.hour) FILTER (WHERE b.urine_output IS NOT NULL)
            OVER (PARTITION BY b.stay_id) AS first_uo_hour
    FROM hourly_base b
    LEFT JOIN static s ON s.stay_id = b.stay_id
    LEFT JOIN (SELECT stay_id, hour, max(stage) AS stage FROM creat_staged GROUP BY ALL) c
        ON c.stay_id = b.stay_id AND c.hour = b.hour
    WINDOW
        w6 AS (PARTITION BY b.stay_id ORDER BY b.hour RANGE BETWEEN 5 PRECEDING AND CURRENT ROW),
        w12 AS (PARTITION BY b.stay_id ORDER BY b.hour RANGE BETWEEN 11 PRECEDING AND CURRENT ROW),
        w24 AS (PARTITION BY b.stay_id ORDER BY b.hour RANGE BETWEEN 23 PRECEDING AND CURRENT ROW)
),
rates AS (  -- mL/kg/h, NULL when the window is not fully covered
    SELECT
        stay_id, hour, rrt,
        last_value(creat_stage_at_hour IGNORE NULLS) OVER (
            PARTITION BY stay_id ORDER BY hour ROWS UNBOUNDED PRECEDING) AS creat_stage,
        CASE WHEN hour >= 5 AND first_uo_hour <= hour - 5 THEN uo_6h / weight_kg / 6 END AS rate_6h,
        CASE WHEN hour >= 11 AND first_uo_hour <= hour - 11 THEN uo_12h / weight_kg / 12 END AS rate_12h,
        CASE WHEN hour >= 23 AND first_uo_hour <= hour - 23 THEN uo_24h / weight_kg / 24 END AS rate_24h
    FROM uo
),
staged AS (
    SELECT
        stay_id, hour,
        coalesce(creat_stage, 0) AS creat_stage,
        CASE
            WHEN rate_24h < 0.3 OR rate_12h = 0 THEN 3
            WHEN rate_12h < 0.5 THEN 2
            WHEN rate_6h < 0.5 THEN 1
            ELSE 0
        END AS uo_stage,
        CASE WHEN rrt = 1 THEN 3 ELSE 0 END AS rrt_stage
    FROM rates
)
SELECT
    stay_id, hour,
    CAST(creat_stage AS TINYINT) AS creat_stage,
    CAST(uo_stage AS TINYINT) AS uo_stage,
    CAST(rrt_stage AS TINYINT) AS rrt_stage,
    CAST(greatest(creat_stage, uo_stage, rrt_stage) AS TINYINT) AS kdigo_stage
FROM staged;

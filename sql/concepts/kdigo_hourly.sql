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
-- Urine output (mL/kg/h), assessed at each hour with urine charted (as mimic-code
-- kdigo_uo): rate_W = urine charted in hours (h-W, h] (mL) / weight (kg) / span (h), where
-- span = h - the last charting at or before h-W (or since ICU admission), i.e. the time
-- over which that urine was collected; rate_W counts only when span >= W (6, 12, 24 h).
-- Weight from static.weight_kg, 80 kg when not charted.
--   3  if rate_24h < 0.3, or rate_12h = 0 (anuria for 12 h)
--   2  if rate_12h < 0.5
--   1  if rate_6h < 0.5
-- The urine stage holds for the following hours until the next urine charting.
-- Renal replacement therapy running in the hour (hourly_base.rrt = 1) -> 3.
--
-- References: KDIGO Clinical Practice Guideline for Acute Kidney Injury, Kidney Int
-- Suppl 2012;2:1-138; MIT-LCP mimic-code mimic-iv/concepts/organfailure/kdigo_creatinine,
-- kdigo_uo, kdigo_stages.
-- Columns: stay_id, hour, creat_stage, uo_stage, rrt_stage, kdigo_stage (all TINYINT 0-3).
CREATE TABLE kdigo_hourly AS
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
        b.urine_output IS NOT NULL AS charted,
        coalesce(s.weight_kg, 80.0) AS weight_kg,                      -- kg, 80 when missing
        sum(b.urine_output) OVER w6 AS vol_6h,                         -- mL charted in (h-6, h]
        sum(b.urine_output) OVER w12 AS vol_12h,
        sum(b.urine_output) OVER w24 AS vol_24h,
        -- last urine charting at or before h-W (-1 = ICU admission): the first volume of
        -- the window was collected since then
        coalesce(max(b.hour) FILTER (WHERE b.urine_output IS NOT NULL) OVER p6, -1) AS prev_6h,
        coalesce(max(b.hour) FILTER (WHERE b.urine_output IS NOT NULL) OVER p12, -1) AS prev_12h,
        coalesce(max(b.hour) FILTER (WHERE b.urine_output IS NOT NULL) OVER p24, -1) AS prev_24h
    FROM hourly_base b
    LEFT JOIN static s ON s.stay_id = b.stay_id
    LEFT JOIN (SELECT stay_id, hour, max(stage) AS stage FROM creat_staged GROUP BY ALL) c
        ON c.stay_id = b.stay_id AND c.hour = b.hour
    WINDOW
        w6 AS (PARTITION BY b.stay_id ORDER BY b.hour RANGE BETWEEN 5 PRECEDING AND CURRENT ROW),
        w12 AS (PARTITION BY b.stay_id ORDER BY b.hour RANGE BETWEEN 11 PRECEDING AND CURRENT ROW),
        w24 AS (PARTITION BY b.stay_id ORDER BY b.hour RANGE BETWEEN 23 PRECEDING AND CURRENT ROW),
        p6 AS (PARTITION BY b.stay_id ORDER BY b.hour RANGE BETWEEN UNBOUNDED PRECEDING AND 6 PRECEDING),
        p12 AS (PARTITION BY b.stay_id ORDER BY b.hour RANGE BETWEEN UNBOUNDED PRECEDING AND 12 PRECEDING),
        p24 AS (PARTITION BY b.stay_id ORDER BY b.hour RANGE BETWEEN UNBOUNDED PRECEDING AND 24 PRECEDING)
),
rates AS (  -- mL/kg/h at urine charting hours; NULL unless the span covers the window
    SELECT
        stay_id, hour, rrt, creat_stage_at_hour, charted,
        CASE WHEN charted AND hour - prev_6h >= 6 THEN vol_6h / weight_kg / (hour - prev_6h) END AS rate_6h,
        CASE WHEN charted AND hour - prev_12h >= 12 THEN vol_12h / weight_kg / (hour - prev_12h) END AS rate_12h,
        CASE WHEN charted AND hour - prev_24h >= 24 THEN vol_24h / weight_kg / (hour - prev_24h) END AS rate_24h
    FROM uo
),
staged_at_hour AS (
    SELECT
        stay_id, hour, rrt, creat_stage_at_hour,
        CASE
            WHEN rate_24h < 0.3 OR rate_12h <= 0 THEN 3
            WHEN rate_12h < 0.5 THEN 2
            WHEN rate_6h < 0.5 THEN 1
            WHEN rate_6h IS NULL THEN NULL                             -- not assessable here
            ELSE 0
        END AS uo_stage_at_hour
    FROM rates
),
staged AS (  -- creatinine and urine stages hold until their next assessment
    SELECT
        stay_id, hour,
        coalesce(last_value(creat_stage_at_hour IGNORE NULLS) OVER w, 0) AS creat_stage,
        coalesce(last_value(uo_stage_at_hour IGNORE NULLS) OVER w, 0) AS uo_stage,
        CASE WHEN rrt = 1 THEN 3 ELSE 0 END AS rrt_stage
    FROM staged_at_hour
    WINDOW w AS (PARTITION BY stay_id ORDER BY hour ROWS UNBOUNDED PRECEDING)
)
SELECT
    stay_id, hour,
    CAST(creat_stage AS TINYINT) AS creat_stage,
    CAST(uo_stage AS TINYINT) AS uo_stage,
    CAST(rrt_stage AS TINYINT) AS rrt_stage,
    CAST(greatest(creat_stage, uo_stage, rrt_stage) AS TINYINT) AS kdigo_stage
FROM staged;

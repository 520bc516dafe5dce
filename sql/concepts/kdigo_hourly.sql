-- kdigo_hourly: KDIGO acute kidney injury stage (0-3), one row per stay-hour of hourly_base.
--
-- kdigo_stage = max(creatinine stage, urine-output stage, RRT stage), as MIT-LCP
-- mimic-code kdigo_stages.sql (without its 6 h smoothing: the stage of the hour itself).
--
-- Creatinine (mg/dL; mimic-code kdigo_creatinine). Each creatinine value is staged
-- against the values strictly before it: the lowest in the previous 48 h (low_48h) and
-- the lowest in the previous 7 days (low_7d), counting the 7 days before ICU admission
-- (hosp/labevents 50912, valid range from registry_items) and the ICU hours of
-- hourly_base:
--   3  if cr >= 3.0 x low_7d, or cr >= 4.0 with an acute rise (cr >= low_48h + 0.3 or
--      cr >= 1.5 x low_7d)
--   2  if cr >= 2.0 x low_7d
--   1  if cr >= low_48h + 0.3, or cr >= 1.5 x low_7d
--   0  otherwise (also the first value ever, which has no baseline).
-- The stage of a value holds for the following hours until the next creatinine value.
--
-- Urine output (mL/kg/h; mimic-code kdigo_uo), at every urine charting time t (uo_rate):
-- rate_W = urine charted in [t - W h, t] / weight known at t / tm_W, tm_W = the real
-- time those chartings collected over (sum of the gaps since each previous charting);
-- rate_6 counts when 6 <= tm_6 < 12, rate_12 when tm_12 >= 12, rate_24 when tm_24 >= 24.
--   NULL  when rate_6 is not defined (or no weight is known: no rate)
--   0     when t <= intime + 6 h (KDIGO needs 6 h of ICU observation)
--   3     if rate_24 < 0.3, or rate_12 = 0 (anuria for 12 h)
--   2     if rate_12 < 0.5
--   1     if rate_6 < 0.5
-- The hour's urine stage is the worst of its chartings; it holds for the following hours
-- until the next hour with a urine stage.
-- RRT: CONTINUOUS renal replacement therapy running in the hour (rrt_hourly.crrt = 1:
-- CRRT, CVVHD, CVVHDF, SCUF) -> 3, as mimic-code's `crrt`; intermittent haemodialysis and
-- peritoneal dialysis (often maintenance dialysis of ESRD) do not stage.
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
    WHERE l.itemid IN (SELECT itemid FROM registry_items WHERE feature = 'creatinine')
      AND l.charttime >= d.intime - INTERVAL 7 DAY
      AND l.charttime < d.intime
      AND l.valuenum BETWEEN r.lo AND r.hi
),
creat_all AS (
    SELECT stay_id, hour, creat FROM creat_pre_icu
    UNION ALL
    SELECT stay_id, hour, creatinine AS creat FROM hourly_base WHERE creatinine IS NOT NULL
),
creat_baseline AS (  -- hours with creatinine are sparse: RANGE frames (hours, not rows)
    SELECT
        stay_id, hour, creat,
        min(creat) OVER (PARTITION BY stay_id ORDER BY hour
                         RANGE BETWEEN 48 PRECEDING AND 1 PRECEDING) AS low_48h,
        min(creat) OVER (PARTITION BY stay_id ORDER BY hour
                         RANGE BETWEEN 168 PRECEDING AND 1 PRECEDING) AS low_7d
    FROM creat_all
),
creat_staged AS (  -- one stage per ICU creatinine hour
    SELECT
        stay_id, hour,
        max(CASE
            WHEN creat >= 3.0 * low_7d THEN 3
            WHEN creat >= 4.0 AND (creat >= low_48h + 0.3 OR creat >= 1.5 * low_7d) THEN 3
            WHEN creat >= 2.0 * low_7d THEN 2
            WHEN creat >= low_48h + 0.3 THEN 1
            WHEN creat >= 1.5 * low_7d THEN 1
            ELSE 0
        END) AS stage
    FROM creat_baseline
    WHERE hour >= 0
    GROUP BY stay_id, hour
),
uo_rates AS (
    SELECT
        stay_id, hour, t_h, tm_6, tm_12, tm_24,
        CASE WHEN tm_6 >= 6 AND tm_6 < 12 THEN vol_6 / weight_kg / tm_6 END AS rate_6,
        CASE WHEN tm_12 >= 12 THEN vol_12 / weight_kg / tm_12 END AS rate_12,
        CASE WHEN tm_24 >= 24 THEN vol_24 / weight_kg / tm_24 END AS rate_24
    FROM uo_rate
),
uo_staged AS (  -- worst urine stage of the hour's chartings
    SELECT
        stay_id, hour,
        max(CASE
            WHEN rate_6 IS NULL THEN NULL
            WHEN t_h <= 6 THEN 0
            WHEN rate_24 < 0.3 THEN 3
            WHEN rate_12 = 0 THEN 3
            WHEN rate_12 < 0.5 THEN 2
            WHEN rate_6 < 0.5 THEN 1
            ELSE 0
        END) AS stage
    FROM uo_rates
    GROUP BY stay_id, hour
),
staged AS (  -- creatinine and urine stages hold until their next assessment (dense hours)
    SELECT
        b.stay_id, b.hour,
        coalesce(last_value(c.stage IGNORE NULLS) OVER w, 0) AS creat_stage,
        coalesce(last_value(u.stage IGNORE NULLS) OVER w, 0) AS uo_stage,
        CASE WHEN r.crrt = 1 THEN 3 ELSE 0 END AS rrt_stage
    FROM hourly_base b
    LEFT JOIN creat_staged c ON c.stay_id = b.stay_id AND c.hour = b.hour
    LEFT JOIN uo_staged u ON u.stay_id = b.stay_id AND u.hour = b.hour
    LEFT JOIN rrt_hourly r ON r.stay_id = b.stay_id AND r.hour = b.hour
    WINDOW w AS (PARTITION BY b.stay_id ORDER BY b.hour ROWS UNBOUNDED PRECEDING)
)
SELECT
    stay_id, hour,
    CAST(creat_stage AS TINYINT) AS creat_stage,
    CAST(uo_stage AS TINYINT) AS uo_stage,
    CAST(rrt_stage AS TINYINT) AS rrt_stage,
    CAST(greatest(creat_stage, uo_stage, rrt_stage) AS TINYINT) AS kdigo_stage
FROM staged;

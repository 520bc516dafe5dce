-- sofa_hourly: Sequential Organ Failure Assessment, one row per stay-hour of hourly_base.
--
-- Each of the six organ scores (0-4) is first computed for every hour from that hour's
-- values, then `sofa` at hour h is the sum over organs of the WORST (maximum) score in
-- the last 24 h, i.e. hours h-23..h of the stay (mimic-code sofa.sql, `*_24hours`).
-- A component with no data in the window scores 0 (mimic-code convention: missing is
-- assumed normal), so `sofa` is never NULL.
--
-- Inputs (hourly_base, units of clin_jepa.data.features):
--   respiration     P/F = pO2 (mmHg) / FiO2 (fraction); FiO2 (%) carried forward up to
--                   4 h (mimic-code bg.sql looks back 4 h). Scores 3-4 need invasive
--                   ventilation in that hour; without it the score is capped at 2.
--                   No FiO2 in the last 4 h -> no P/F -> no score (not room-air assumed).
--   coagulation     platelets (K/uL)
--   liver           bilirubin (mg/dL)
--   cardiovascular  mean arterial pressure (mmHg) and vasopressor rates (mcg/kg/min):
--                   norepinephrine, epinephrine, dopamine, dobutamine (SOFA does not
--                   score vasopressin or phenylephrine; neither does mimic-code).
--   cns             GCS total = eye + verbal + motor, each component carried forward up
--                   to 6 h (mimic-code gcs.sql); NULL unless all three are known.
--   renal           creatinine (mg/dL) and urine output per 24 h (mL), assessed at hours
--                   with urine charted: urine charted in (h-24, h] / span x 24, where span
--                   = h - the last charting at or before h-24 (or since ICU admission);
--                   used only when span is 22-30 h (mimic-code uo_tm_24hr), else NULL.
--
-- Thresholds: Vincent et al., Intensive Care Med 1996;22:707-10 (the SOFA score), as
-- coded in MIT-LCP mimic-code (mimic-iv/concepts/score/sofa.sql).
-- Columns: stay_id, hour, pf_ratio (mmHg, hour value, for events), gcs (hour value),
-- respiration, coagulation, liver, cardiovascular, cns, renal (24 h worst, 0 if
-- missing), sofa (0-24).
CREATE TABLE sofa_hourly AS
WITH carried AS (
    SELECT
        b.stay_id, b.hour, b.po2, b.ventilation, b.platelets, b.bilirubin, b.mbp,
        b.norepinephrine, b.epinephrine, b.dopamine, b.dobutamine, b.creatinine, b.urine_output,
        last_value(b.fio2 IGNORE NULLS) OVER w4 AS fio2_cf,           -- %, <= 4 h old
        last_value(b.gcs_eye IGNORE NULLS) OVER w6 AS eye_cf,          -- 1-4, <= 6 h old
        last_value(b.gcs_verbal IGNORE NULLS) OVER w6 AS verbal_cf,    -- 1-5
        last_value(b.gcs_motor IGNORE NULLS) OVER w6 AS motor_cf,      -- 1-6
        sum(b.urine_output) OVER w24 AS uo_vol_24h,                    -- mL charted in (h-24, h]
        -- last urine charting at or before h-24 (-1 = ICU admission)
        coalesce(max(b.hour) FILTER (WHERE b.urine_output IS NOT NULL) OVER p24, -1) AS uo_prev_24h
    FROM hourly_base b
    WINDOW
        w4 AS (PARTITION BY b.stay_id ORDER BY b.hour RANGE BETWEEN 4 PRECEDING AND CURRENT ROW),
        w6 AS (PARTITION BY b.stay_id ORDER BY b.hour RANGE BETWEEN 6 PRECEDING AND CURRENT ROW),
        w24 AS (PARTITION BY b.stay_id ORDER BY b.hour RANGE BETWEEN 23 PRECEDING AND CURRENT ROW),
        p24 AS (PARTITION BY b.stay_id ORDER BY b.hour RANGE BETWEEN UNBOUNDED PRECEDING AND 24 PRECEDING)
),
derived AS (
    SELECT
        *,
        po2 / (fio2_cf / 100.0) AS pf_ratio,                          -- mmHg
        eye_cf + verbal_cf + motor_cf AS gcs,                          -- 3-15
        CASE WHEN urine_output IS NOT NULL AND hour - uo_prev_24h BETWEEN 22 AND 30
             THEN uo_vol_24h / (hour - uo_prev_24h) * 24 END AS uo_24h_valid  -- mL per 24 h
    FROM carried
),
hourly_scores AS (
    SELECT
        stay_id, hour, pf_ratio, gcs,
        CASE
            WHEN pf_ratio IS NULL THEN NULL
            WHEN pf_ratio < 100 AND ventilation = 1 THEN 4
            WHEN pf_ratio < 200 AND ventilation = 1 THEN 3
            WHEN pf_ratio < 300 THEN 2
            WHEN pf_ratio < 400 THEN 1
            ELSE 0
        END AS respiration,
        CASE
            WHEN platelets IS NULL THEN NULL
            WHEN platelets < 20 THEN 4
            WHEN platelets < 50 THEN 3
            WHEN platelets < 100 THEN 2
            WHEN platelets < 150 THEN 1
            ELSE 0
        END AS coagulation,
        CASE
            WHEN bilirubin IS NULL THEN NULL
            WHEN bilirubin >= 12.0 THEN 4
            WHEN bilirubin >= 6.0 THEN 3
            WHEN bilirubin >= 2.0 THEN 2
            WHEN bilirubin >= 1.2 THEN 1
            ELSE 0
        END AS liver,
        CASE
            WHEN dopamine > 15 OR epinephrine > 0.1 OR norepinephrine > 0.1 THEN 4
            WHEN dopamine > 5 OR epinephrine > 0 OR norepinephrine > 0 THEN 3
            WHEN dopamine > 0 OR dobutamine > 0 THEN 2
            WHEN mbp < 70 THEN 1
            WHEN mbp IS NULL THEN NULL
            ELSE 0
        END AS cardiovascular,
        CASE
            WHEN gcs IS NULL THEN NULL
            WHEN gcs < 6 THEN 4
            WHEN gcs < 10 THEN 3
            WHEN gcs < 13 THEN 2
            WHEN gcs < 15 THEN 1
            ELSE 0
        END AS cns,
        CASE
            WHEN creatinine >= 5.0 OR uo_24h_valid < 200 THEN 4
            WHEN creatinine >= 3.5 OR uo_24h_valid < 500 THEN 3
            WHEN creatinine >= 2.0 THEN 2
            WHEN creatinine >= 1.2 THEN 1
            WHEN creatinine IS NULL AND uo_24h_valid IS NULL THEN NULL
            ELSE 0
        END AS renal
    FROM derived
),
worst_24h AS (  -- worst score of each organ over hours h-23..h; missing -> 0
    SELECT
        stay_id, hour, pf_ratio, gcs,
        coalesce(max(respiration) OVER w24, 0) AS respiration,
        coalesce(max(coagulation) OVER w24, 0) AS coagulation,
        coalesce(max(liver) OVER w24, 0) AS liver,
        coalesce(max(cardiovascular) OVER w24, 0) AS cardiovascular,
        coalesce(max(cns) OVER w24, 0) AS cns,
        coalesce(max(renal) OVER w24, 0) AS renal
    FROM hourly_scores
    WINDOW w24 AS (PARTITION BY stay_id ORDER BY hour RANGE BETWEEN 23 PRECEDING AND CURRENT ROW)
)
SELECT
    stay_id, hour,
    CAST(pf_ratio AS DOUBLE) AS pf_ratio,
    CAST(gcs AS DOUBLE) AS gcs,
    CAST(respiration AS TINYINT) AS respiration,
    CAST(coagulation AS TINYINT) AS coagulation,
    CAST(liver AS TINYINT) AS liver,
    CAST(cardiovascular AS TINYINT) AS cardiovascular,
    CAST(cns AS TINYINT) AS cns,
    CAST(renal AS TINYINT) AS renal,
    CAST(respiration + coagulation + liver + cardiovascular + cns + renal AS TINYINT) AS sofa
FROM worst_24h;

-- sofa_hourly: Sequential Organ Failure Assessment, one row per stay-hour of hourly_base.
--
-- Each of the six organ scores (0-4) is first computed for every hour from that hour's
-- values, then `sofa` at hour h is the sum over organs of the WORST (maximum) score in
-- the last 24 h, i.e. hours h-23..h of the stay (mimic-code sofa.sql, `*_24hours`).
-- A component with no data in the window scores 0 (mimic-code convention: missing is
-- assumed normal), so `sofa` is never NULL.
--
-- Inputs (units of clin_jepa.data.features):
--   respiration     bg_hourly.pf_ratio: the lowest PaO2/FiO2 (mmHg) of the hour's ARTERIAL
--                   gases (specimen 'ART.'; the gas's own FiO2 50816, else charted FiO2
--                   of the last 4 h; mimic-code bg.sql). Scores 3-4 need invasive
--                   ventilation in that hour; without it the score is capped at 2.
--                   No arterial gas with an FiO2 -> no score (room air is not assumed).
--   coagulation     platelets (K/uL)
--   liver           bilirubin (mg/dL)
--   cardiovascular  mean arterial pressure (mmHg) and vasopressor rates (mcg/kg/min):
--                   norepinephrine, epinephrine, dopamine, dobutamine (SOFA does not
--                   score vasopressin or phenylephrine; neither does mimic-code).
--   cns             gcs_hourly.gcs: the lowest GCS of the hour by mimic-code gcs.sql (an
--                   intubated patient's 'No Response-ETT' verbal -> GCS 15, components
--                   from the previous charting < 6 h earlier, missing ones normal).
--   renal           creatinine (mg/dL) and urine output per 24 h (mL) from uo_rate (the
--                   hour's chartings): vol_sofa / tm_sofa x 24, used only when tm_sofa is
--                   22-30 h (mimic-code urine_output_rate uo_tm_24hr); the largest of the
--                   hour's chartings (mimic-code MAX).
-- hourly_base has one row per grid hour, so the 24 h windows are ROWS frames.
--
-- Thresholds: Vincent et al., Intensive Care Med 1996;22:707-10 (the SOFA score), as
-- coded in MIT-LCP mimic-code (mimic-iv/concepts/score/sofa.sql).
-- Columns: stay_id, hour, pf_ratio (mmHg, hour value, for events), gcs (hour value),
-- respiration, coagulation, liver, cardiovascular, cns, renal (24 h worst, 0 if
-- missing), sofa (0-24).
CREATE TABLE sofa_hourly AS
WITH uo_24h AS (
    SELECT stay_id, hour,
           max(CASE WHEN tm_sofa BETWEEN 22 AND 30 THEN vol_sofa / tm_sofa * 24 END) AS uo_24h_valid
    FROM uo_rate
    GROUP BY stay_id, hour
),
derived AS (
    SELECT
        b.stay_id, b.hour, b.ventilation, b.platelets, b.bilirubin, b.mbp,
        b.norepinephrine, b.epinephrine, b.dopamine, b.dobutamine, b.creatinine,
        p.pf_ratio,                                                   -- mmHg, arterial
        g.gcs,                                                        -- 3-15
        u.uo_24h_valid                                                -- mL per 24 h
    FROM hourly_base b
    LEFT JOIN bg_hourly p ON p.stay_id = b.stay_id AND p.hour = b.hour
    LEFT JOIN gcs_hourly g ON g.stay_id = b.stay_id AND g.hour = b.hour
    LEFT JOIN uo_24h u ON u.stay_id = b.stay_id AND u.hour = b.hour
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
    WINDOW w24 AS (PARTITION BY stay_id ORDER BY hour ROWS BETWEEN 23 PRECEDING AND CURRENT ROW)
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

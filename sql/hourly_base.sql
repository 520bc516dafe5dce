-- hourly_base: one row per grid hour of every cohort stay: observations (state) and
-- interventions (actions), the input of the derived concepts (SOFA, KDIGO) and of hourly.sql.
-- Observations: one column per features.OBSERVATION_COLUMNS, in the registry's unit
-- (Float64, NULL = not observed in the hour), aggregated in vitals/labs/urine_hourly.
-- Actions (features.ACTION_COLUMNS):
--   vasopressor rates in canonical units (mcg/kg/min; vasopressin units/hour), the max
--   valid rate over infusions overlapping the hour; 0 when off; NULL when every
--   overlapping row had an absurd rate;
--   nee = norepinephrine-equivalent dose (mcg/kg/min) of the doses running at the same
--   time (nee_hourly), NULL when a contributing drug's rate is NULL;
--   ventilation, rrt, antibiotics: Int8 0/1 (an interval overlaps the hour);
--   fluid_bolus_ml: mL of bolus fluid started in the hour (0 when none).
CREATE TABLE hourly_base AS
WITH obs_long AS (
    SELECT stay_id, hour, feature, value FROM vitals_hourly
    UNION ALL
    SELECT stay_id, hour, feature, value FROM labs_hourly
    UNION ALL
    SELECT stay_id, hour, feature, value FROM urine_hourly
),
obs AS (
    SELECT
        stay_id,
        hour,
        max(value) FILTER (WHERE feature = 'heart_rate') AS heart_rate,
        max(value) FILTER (WHERE feature = 'sbp') AS sbp,
        max(value) FILTER (WHERE feature = 'dbp') AS dbp,
        max(value) FILTER (WHERE feature = 'mbp') AS mbp,
        max(value) FILTER (WHERE feature = 'resp_rate') AS resp_rate,
        max(value) FILTER (WHERE feature = 'spo2') AS spo2,
        max(value) FILTER (WHERE feature = 'temperature') AS temperature,
        max(value) FILTER (WHERE feature = 'fio2') AS fio2,
        max(value) FILTER (WHERE feature = 'ph') AS ph,
        max(value) FILTER (WHERE feature = 'po2') AS po2,
        max(value) FILTER (WHERE feature = 'pco2') AS pco2,
        max(value) FILTER (WHERE feature = 'lactate') AS lactate,
        max(value) FILTER (WHERE feature = 'sodium') AS sodium,
        max(value) FILTER (WHERE feature = 'potassium') AS potassium,
        max(value) FILTER (WHERE feature = 'chloride') AS chloride,
        max(value) FILTER (WHERE feature = 'bicarbonate') AS bicarbonate,
        max(value) FILTER (WHERE feature = 'bun') AS bun,
        max(value) FILTER (WHERE feature = 'creatinine') AS creatinine,
        max(value) FILTER (WHERE feature = 'glucose') AS glucose,
        max(value) FILTER (WHERE feature = 'bilirubin') AS bilirubin,
        max(value) FILTER (WHERE feature = 'hemoglobin') AS hemoglobin,
        max(value) FILTER (WHERE feature = 'platelets') AS platelets,
        max(value) FILTER (WHERE feature = 'wbc') AS wbc,
        max(value) FILTER (WHERE feature = 'inr') AS inr,
        max(value) FILTER (WHERE feature = 'gcs_eye') AS gcs_eye,
        max(value) FILTER (WHERE feature = 'gcs_verbal') AS gcs_verbal,
        max(value) FILTER (WHERE feature = 'gcs_motor') AS gcs_motor,
        max(value) FILTER (WHERE feature = 'urine_output') AS urine_output
    FROM obs_long
    GROUP BY stay_id, hour
),
vaso AS (
    SELECT
        vh.stay_id,
        vh.hour,
        CASE WHEN count(*) FILTER (WHERE vh.drug = 'norepinephrine') = 0 THEN 0.0
             ELSE max(vh.rate) FILTER (WHERE vh.drug = 'norepinephrine') END AS norepinephrine,
        CASE WHEN count(*) FILTER (WHERE vh.drug = 'epinephrine') = 0 THEN 0.0
             ELSE max(vh.rate) FILTER (WHERE vh.drug = 'epinephrine') END AS epinephrine,
        CASE WHEN count(*) FILTER (WHERE vh.drug = 'phenylephrine') = 0 THEN 0.0
             ELSE max(vh.rate) FILTER (WHERE vh.drug = 'phenylephrine') END AS phenylephrine,
        CASE WHEN count(*) FILTER (WHERE vh.drug = 'dopamine') = 0 THEN 0.0
             ELSE max(vh.rate) FILTER (WHERE vh.drug = 'dopamine') END AS dopamine,
        CASE WHEN count(*) FILTER (WHERE vh.drug = 'vasopressin') = 0 THEN 0.0
             ELSE max(vh.rate) FILTER (WHERE vh.drug = 'vasopressin') END AS vasopressin,
        CASE WHEN count(*) FILTER (WHERE vh.drug = 'dobutamine') = 0 THEN 0.0
             ELSE max(vh.rate) FILTER (WHERE vh.drug = 'dobutamine') END AS dobutamine
    FROM vasopressor_hourly vh
    GROUP BY vh.stay_id, vh.hour
)
SELECT
    g.stay_id,
    g.hour,
    o.heart_rate,
    o.sbp,
    o.dbp,
    o.mbp,
    o.resp_rate,
    o.spo2,
    o.temperature,
    o.fio2,
    o.ph,
    o.po2,
    o.pco2,
    o.lactate,
    o.sodium,
    o.potassium,
    o.chloride,
    o.bicarbonate,
    o.bun,
    o.creatinine,
    o.glucose,
    o.bilirubin,
    o.hemoglobin,
    o.platelets,
    o.wbc,
    o.inr,
    o.gcs_eye,
    o.gcs_verbal,
    o.gcs_motor,
    o.urine_output,
    CASE WHEN v.stay_id IS NULL THEN 0.0 ELSE v.norepinephrine END AS norepinephrine,
    CASE WHEN v.stay_id IS NULL THEN 0.0 ELSE v.epinephrine END AS epinephrine,
    CASE WHEN v.stay_id IS NULL THEN 0.0 ELSE v.phenylephrine END AS phenylephrine,
    CASE WHEN v.stay_id IS NULL THEN 0.0 ELSE v.dopamine END AS dopamine,
    CASE WHEN v.stay_id IS NULL THEN 0.0 ELSE v.vasopressin END AS vasopressin,
    CASE WHEN v.stay_id IS NULL THEN 0.0 ELSE v.dobutamine END AS dobutamine,
    CASE WHEN v.stay_id IS NULL THEN 0.0 ELSE ne.nee END AS nee,
    CAST(vent.stay_id IS NOT NULL AS TINYINT) AS ventilation,
    CAST(rrt.stay_id IS NOT NULL AS TINYINT) AS rrt,
    CAST(abx.stay_id IS NOT NULL AS TINYINT) AS antibiotics,
    coalesce(fb.fluid_bolus_ml, 0.0) AS fluid_bolus_ml
FROM grid g
LEFT JOIN obs o ON o.stay_id = g.stay_id AND o.hour = g.hour
LEFT JOIN vaso v ON v.stay_id = g.stay_id AND v.hour = g.hour
LEFT JOIN nee_hourly ne ON ne.stay_id = g.stay_id AND ne.hour = g.hour
LEFT JOIN ventilation_hourly vent ON vent.stay_id = g.stay_id AND vent.hour = g.hour
LEFT JOIN rrt_hourly rrt ON rrt.stay_id = g.stay_id AND rrt.hour = g.hour
LEFT JOIN antibiotic_hourly abx ON abx.stay_id = g.stay_id AND abx.hour = g.hour
LEFT JOIN fluid_bolus_hourly fb ON fb.stay_id = g.stay_id AND fb.hour = g.hour;

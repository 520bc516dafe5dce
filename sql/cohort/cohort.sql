-- cohort: the ICU stays clin-jepa models (one row per included stay).
-- Rules, applied in this order (attrition.sql counts each):
--   1. adult: age >= getvariable('min_age') years
--   2. length of stay >= getvariable('min_los_hours') hours
--   3. first ICU stay of the patient (stay_seq = 1), when getvariable('first_stay_only')
--   4. at least one valid vital sign (registry_items group 'vitals', value inside the
--      registry range after unit conversion) charted between intime and outtime.
-- first_stay: the stay is the patient's first ICU stay (whether or not rule 3 is on).
CREATE TABLE cohort AS
WITH eligible AS (
    SELECT d.stay_id, d.subject_id, d.hadm_id, d.los_hours, d.stay_seq, d.intime, d.outtime
    FROM icustay_detail d
    WHERE d.age >= getvariable('min_age')
      AND d.los_hours >= getvariable('min_los_hours')
      AND (NOT getvariable('first_stay_only') OR d.stay_seq = 1)
),
vital_items AS (  -- heart rate 220045, BP 220179/220050/..., RR, SpO2, temperature
    SELECT r.itemid, r.mul, r.add, r.frac_to_pct, r.lo, r.hi
    FROM registry_items r JOIN registry_features f ON f.feature = r.feature
    WHERE f.grp = 'vitals' AND r.source = 'chartevents'
),
with_vital AS (
    SELECT DISTINCT ce.stay_id
    FROM chartevents ce
    JOIN vital_items v ON v.itemid = ce.itemid
    JOIN eligible e ON e.stay_id = ce.stay_id
    WHERE ce.charttime BETWEEN e.intime AND e.outtime
      AND (CASE WHEN v.frac_to_pct AND ce.valuenum <= 1 THEN ce.valuenum * 100
                ELSE ce.valuenum * v.mul + v.add END) BETWEEN v.lo AND v.hi
)
SELECT e.stay_id, e.subject_id, e.hadm_id, e.los_hours, e.stay_seq = 1 AS first_stay
FROM eligible e
SEMI JOIN with_vital w ON w.stay_id = e.stay_id;

-- static: per-stay static facts of the cohort (the demographics text reads these).
-- age in years (anchor scheme, see icustay_detail); sex female/male from patients.gender;
-- race and admission_type as charted in hosp/admissions;
-- weight_kg: first charted weight of the stay (chartevents 226512 Admission Weight (Kg),
-- 224639 Daily Weight, 226531 Admission Weight (lbs.) x 0.45359237; registry_weight_items)
-- inside [getvariable('weight_lo'), getvariable('weight_hi')] kg, else the first
-- icu/inputevents patientweight in that range, else NULL.
CREATE TABLE static AS
WITH charted AS (
    SELECT ce.stay_id, ce.charttime, ce.valuenum * w.mul AS kg
    FROM chartevents ce
    JOIN registry_weight_items w ON w.itemid = ce.itemid
    SEMI JOIN cohort c ON c.stay_id = ce.stay_id
),
first_charted AS (
    SELECT stay_id, arg_min(kg, (charttime, kg)) AS kg
    FROM charted
    WHERE kg BETWEEN getvariable('weight_lo') AND getvariable('weight_hi')
    GROUP BY stay_id
),
first_input AS (
    SELECT ie.stay_id, arg_min(ie.patientweight, (ie.starttime, ie.patientweight)) AS kg
    FROM inputevents ie
    SEMI JOIN cohort c ON c.stay_id = ie.stay_id
    WHERE ie.patientweight BETWEEN getvariable('weight_lo') AND getvariable('weight_hi')
      AND ie.starttime IS NOT NULL
    GROUP BY ie.stay_id
)
SELECT
    c.stay_id,
    d.age,
    CASE upper(d.gender) WHEN 'F' THEN 'female' WHEN 'M' THEN 'male' END AS sex,
    d.race,
    d.admission_type,
    round(coalesce(fc.kg, fi.kg), 2) AS weight_kg
FROM cohort c
JOIN icustay_detail d ON d.stay_id = c.stay_id
LEFT JOIN first_charted fc ON fc.stay_id = c.stay_id
LEFT JOIN first_input fi ON fi.stay_id = c.stay_id;

-- static: per-stay static facts of the cohort (the demographics text reads these).
-- age in years (anchor scheme, see icustay_detail); sex female/male from patients.gender;
-- race and admission_type as charted in hosp/admissions;
-- weight_kg: the weight known in hour 0 (the text is the hour-0 state): the first weight
-- of `weight` known before intime + 1 h (the admission weight counts from intime - 2 h),
-- else the stay's admission weight whenever charted, else the first icu/inputevents
-- patientweight entered before intime + 1 h inside [getvariable('weight_lo'),
-- getvariable('weight_hi')] kg, else NULL. A daily weight charted later never stands in.
CREATE TABLE static AS
WITH at_hour0 AS (
    SELECT w.stay_id, arg_min(w.weight_kg, (w.known_from, w.weight_kg)) AS kg
    FROM weight w
    JOIN icustay_detail d ON d.stay_id = w.stay_id
    WHERE w.known_from < d.intime + INTERVAL 1 HOUR
    GROUP BY w.stay_id
),
admission AS (
    SELECT stay_id, any_value(weight_kg) AS kg FROM weight WHERE admission GROUP BY stay_id
),
first_input AS (
    SELECT ie.stay_id, arg_min(ie.patientweight, (ie.starttime, ie.patientweight)) AS kg
    FROM inputevents ie
    JOIN icustay_detail d ON d.stay_id = ie.stay_id
    SEMI JOIN cohort c ON c.stay_id = ie.stay_id
    WHERE ie.patientweight BETWEEN getvariable('weight_lo') AND getvariable('weight_hi')
      AND ie.starttime < d.intime + INTERVAL 1 HOUR
    GROUP BY ie.stay_id
)
SELECT
    c.stay_id,
    d.age,
    CASE upper(d.gender) WHEN 'F' THEN 'female' WHEN 'M' THEN 'male' END AS sex,
    d.race,
    d.admission_type,
    round(coalesce(h.kg, a.kg, fi.kg), 2) AS weight_kg
FROM cohort c
JOIN icustay_detail d ON d.stay_id = c.stay_id
LEFT JOIN at_hour0 h ON h.stay_id = c.stay_id
LEFT JOIN admission a ON a.stay_id = c.stay_id
LEFT JOIN first_input fi ON fi.stay_id = c.stay_id;

-- weight: the body weights of each cohort stay and from when each is known, as MIT-LCP
-- mimic-code mimic-iv/concepts/demographics/weight_durations.sql.
-- Charted weights: chartevents registry_weight_items (226512 Admission Weight (Kg),
-- 224639 Daily Weight, 226531 Admission Weight (lbs.) x 0.45359237) inside
-- [getvariable('weight_lo'), getvariable('weight_hi')] kg. A weight is known from its
-- charttime, except the stay's FIRST admission weight (registry_weight_items.admission:
-- 226512 / 226531), which describes
-- the patient at admission and is known from intime - 2 h (mimic-code's convention).
-- Readers take the latest weight with known_from <= t; before the first one, only the
-- admission weight (whenever charted) may stand in -- never a daily weight charted later
-- (mimic-code back-fills with any first weight; clin-jepa does not, docs/data.md).
-- Columns: stay_id, known_from (TIMESTAMP, stays in the database), weight_kg, admission
-- (BOOLEAN: the stay's first admission weight).
CREATE TABLE weight AS
WITH charted AS (
    SELECT ce.stay_id, ce.charttime, w.admission AS admission_item, ce.valuenum * w.mul AS kg
    FROM chartevents ce
    JOIN registry_weight_items w ON w.itemid = ce.itemid
    SEMI JOIN cohort c ON c.stay_id = ce.stay_id
    WHERE ce.valuenum * w.mul BETWEEN getvariable('weight_lo') AND getvariable('weight_hi')
),
ranked AS (
    SELECT ch.*, d.intime,
           ch.admission_item
           AND row_number() OVER (PARTITION BY ch.stay_id, ch.admission_item
                                  ORDER BY ch.charttime, ch.kg) = 1 AS admission
    FROM charted ch
    JOIN icustay_detail d ON d.stay_id = ch.stay_id
)
SELECT
    stay_id,
    CASE WHEN admission THEN least(intime - INTERVAL 2 HOUR, charttime) ELSE charttime END AS known_from,
    round(kg, 3) AS weight_kg,
    admission
FROM ranked;

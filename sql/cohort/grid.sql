-- grid: the hourly time grid of every cohort stay.
-- hour 0 starts at ICU intime; t0 = intime + hour hours, t1 = t0 + 1 hour.
-- One row per hour < least(ceil(los_hours), getvariable('max_stay_hours')).
CREATE TABLE grid AS
WITH n AS (
    SELECT c.stay_id, d.intime,
           CAST(least(ceil(c.los_hours), getvariable('max_stay_hours')) AS BIGINT) AS n_hours
    FROM cohort c JOIN icustay_detail d ON d.stay_id = c.stay_id
),
hours AS (
    SELECT stay_id, intime, unnest(range(n_hours)) AS hour FROM n
)
SELECT
    stay_id,
    CAST(hour AS INTEGER) AS hour,
    intime + to_hours(hour) AS t0,
    intime + to_hours(hour + 1) AS t1
FROM hours;

-- ventilation_hourly: grid hours with invasive mechanical ventilation active.
-- Source: icu/procedureevents intervals [starttime, endtime) of registry_ventilation
-- items (225792 Invasive Ventilation). An hour counts when the interval overlaps it.
-- (Non-invasive ventilation 225794 is not invasive and is not counted.)
-- Columns: stay_id, hour (one row per ventilated hour).
CREATE TABLE ventilation_hourly AS
WITH stays AS (
    SELECT g.stay_id, any_value(d.intime) AS intime, max(g.hour) + 1 AS n_hours
    FROM grid g JOIN icustay_detail d ON d.stay_id = g.stay_id
    GROUP BY g.stay_id
),
intervals AS (
    SELECT
        pe.stay_id,
        s.n_hours,
        CAST(floor(date_diff('second', s.intime, pe.starttime) / 3600.0) AS BIGINT) AS h0,
        CAST(ceil(date_diff('second', s.intime, coalesce(pe.endtime, pe.starttime)) / 3600.0) AS BIGINT) AS h1
    FROM procedureevents pe
    JOIN registry_ventilation r ON r.itemid = pe.itemid
    JOIN stays s ON s.stay_id = pe.stay_id
    WHERE pe.starttime IS NOT NULL
)
SELECT DISTINCT stay_id, CAST(hour AS INTEGER) AS hour
FROM (
    SELECT stay_id, unnest(range(greatest(h0, 0), least(greatest(h1, h0 + 1), n_hours))) AS hour
    FROM intervals
);

-- rrt_hourly: grid hours with renal replacement therapy active.
-- Source: icu/procedureevents intervals [starttime, endtime) of registry_rrt
-- items (225802 CRRT, 225803 CVVHD, 225809 CVVHDF, 225955 SCUF, 225441 Hemodialysis,
-- 225805 Peritoneal Dialysis). An hour counts when the interval overlaps it.
-- crrt = 1 when a continuous mode (registry_rrt.continuous: CRRT, CVVHD, CVVHDF, SCUF;
-- features.CRRT_ITEMIDS) overlaps the hour: KDIGO stage 3 counts only those, as mimic-code
-- kdigo_stages (its `crrt` concept); intermittent haemodialysis and peritoneal dialysis
-- are often maintenance dialysis of ESRD patients (sql/cohort/esrd.sql).
-- Columns: stay_id, hour (one row per hour on RRT), crrt (TINYINT 0/1).
CREATE TABLE rrt_hourly AS
WITH stays AS (
    SELECT g.stay_id, any_value(d.intime) AS intime, max(g.hour) + 1 AS n_hours
    FROM grid g JOIN icustay_detail d ON d.stay_id = g.stay_id
    GROUP BY g.stay_id
),
intervals AS (
    SELECT
        pe.stay_id,
        s.n_hours,
        r.continuous,
        CAST(floor(date_diff('second', s.intime, pe.starttime) / 3600.0) AS BIGINT) AS h0,
        CAST(ceil(date_diff('second', s.intime, coalesce(pe.endtime, pe.starttime)) / 3600.0) AS BIGINT) AS h1
    FROM procedureevents pe
    JOIN registry_rrt r ON r.itemid = pe.itemid
    JOIN stays s ON s.stay_id = pe.stay_id
    WHERE pe.starttime IS NOT NULL
)
SELECT stay_id, CAST(hour AS INTEGER) AS hour, CAST(bool_or(continuous) AS TINYINT) AS crrt
FROM (
    SELECT stay_id, continuous,
           unnest(range(greatest(h0, 0), least(greatest(h1, h0 + 1), n_hours))) AS hour
    FROM intervals
)
GROUP BY stay_id, hour;

-- antibiotic_hourly: grid hours with an active systemic antibiotic order.
-- Source: the systemic antibiotic orders of `antibiotic` (sql/treatment/antibiotic.sql:
-- mimic-code's drug list with route and drug-type exclusions).
-- Mapping: prescriptions have no stay_id; an order belongs to the cohort stay of the same
-- hadm_id. Interval [starttime, stoptime); without a stoptime (or with stoptime before
-- starttime) the order lasts getvariable('antibiotic_default_hours') hours.
-- Columns: stay_id, hour (one row per grid hour overlapped by an order).
CREATE TABLE antibiotic_hourly AS
WITH stays AS (
    SELECT g.stay_id, any_value(c.hadm_id) AS hadm_id, any_value(d.intime) AS intime,
           max(g.hour) + 1 AS n_hours
    FROM grid g
    JOIN cohort c ON c.stay_id = g.stay_id
    JOIN icustay_detail d ON d.stay_id = g.stay_id
    GROUP BY g.stay_id
),
orders AS (
    SELECT
        s.stay_id,
        s.n_hours,
        CAST(floor(date_diff('second', s.intime, pr.starttime) / 3600.0) AS BIGINT) AS h0,
        CAST(ceil(date_diff('second', s.intime,
            CASE WHEN pr.stoptime > pr.starttime THEN pr.stoptime
                 ELSE pr.starttime + to_hours(CAST(getvariable('antibiotic_default_hours') AS BIGINT)) END
        ) / 3600.0) AS BIGINT) AS h1
    FROM antibiotic pr
    JOIN stays s ON s.hadm_id = pr.hadm_id
)
SELECT DISTINCT stay_id, CAST(hour AS INTEGER) AS hour
FROM (
    SELECT stay_id, unnest(range(greatest(h0, 0), least(greatest(h1, h0 + 1), n_hours))) AS hour
    FROM orders
);

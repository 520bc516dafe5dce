-- antibiotic_hourly: grid hours with an active systemic antibiotic order.
-- Source: hosp/prescriptions whose `drug` contains one of registry_antibiotic_patterns
-- (case-insensitive, as mimic-code's antibiotic concept) and whose route is not in
-- registry_excluded_routes (eye/ear/topical; a missing route counts as systemic).
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
antibiotic_drugs AS (  -- match the few thousand distinct drug names, not every row
    SELECT DISTINCT pr.drug
    FROM (SELECT DISTINCT drug FROM prescriptions) pr
    JOIN registry_antibiotic_patterns p ON contains(lower(pr.drug), p.pattern)
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
    FROM prescriptions pr
    JOIN antibiotic_drugs a ON a.drug = pr.drug
    JOIN stays s ON s.hadm_id = pr.hadm_id
    WHERE pr.starttime IS NOT NULL
      AND upper(trim(coalesce(pr.route, ''))) NOT IN (SELECT route FROM registry_excluded_routes)
)
SELECT DISTINCT stay_id, CAST(hour AS INTEGER) AS hour
FROM (
    SELECT stay_id, unnest(range(greatest(h0, 0), least(greatest(h1, h0 + 1), n_hours))) AS hour
    FROM orders
);

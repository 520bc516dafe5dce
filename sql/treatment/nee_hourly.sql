-- nee_hourly: norepinephrine-equivalent dose (mcg/kg/min) per stay-hour, from the doses
-- running AT THE SAME TIME, as MIT-LCP mimic-code norepinephrine_equivalent_dose.sql
-- (Goradia et al. J Crit Care 2021): NEE(t) = sum over vasopressors running at instant t
-- of rate x registry_vasopressors.nee_factor (norepinephrine 1, epinephrine 1,
-- phenylephrine 0.1, dopamine 0.01, vasopressin 2.5/60 per unit/h; dobutamine 0).
-- The hour's NEE is the largest NEE(t) over the hour: NEE(t) only changes when an
-- infusion starts or stops, so it is evaluated at the hour's start and at every infusion
-- start inside the hour. Two drugs that run at different times of one hour do not add
-- up (the sum of per-drug hourly maxima would). NULL when an infusion counted at that
-- instant has an absurd rate (vasopressor_hourly's rule).
-- Columns: stay_id, hour, nee (one row per hour with a vasopressor/inotrope infusion).
CREATE TABLE nee_hourly AS
WITH stays AS (
    SELECT g.stay_id, any_value(d.intime) AS intime, max(g.hour) + 1 AS n_hours
    FROM grid g JOIN icustay_detail d ON d.stay_id = g.stay_id
    GROUP BY g.stay_id
),
infusions AS (
    SELECT
        ie.stay_id, s.intime, s.n_hours, ie.starttime,
        coalesce(ie.endtime, ie.starttime) AS endtime,
        v.nee_factor,
        CASE WHEN u.unit = v.unit
             THEN ie.rate * u.mul / CASE WHEN u.per_weight THEN
                      CASE WHEN ie.patientweight BETWEEN getvariable('weight_lo') AND getvariable('weight_hi')
                           THEN ie.patientweight END
                  ELSE 1.0 END
        END AS r,
        v.hi
    FROM inputevents ie
    JOIN registry_vasopressors v ON v.itemid = ie.itemid
    JOIN stays s ON s.stay_id = ie.stay_id
    LEFT JOIN registry_rate_units u ON u.rateuom = ie.rateuom
    WHERE (ie.rate IS NOT NULL OR ie.rate_raw IS NOT NULL)
      AND ie.starttime IS NOT NULL
),
valid AS (
    SELECT *, CASE WHEN r >= 0 AND r <= hi THEN r END AS rate FROM infusions
),
infusion_hours AS (  -- each infusion in every grid hour it overlaps (as vasopressor_hourly)
    SELECT *
    FROM (
        SELECT stay_id, intime, starttime, endtime, rate, nee_factor,
               unnest(range(greatest(CAST(floor(date_diff('second', intime, starttime) / 3600.0) AS BIGINT), 0),
                            least(greatest(CAST(ceil(date_diff('second', intime, endtime) / 3600.0) AS BIGINT),
                                           CAST(floor(date_diff('second', intime, starttime) / 3600.0) AS BIGINT) + 1),
                                  n_hours))) AS hour
        FROM valid
    )
),
instants AS (  -- the hour's start and every infusion start inside the hour
    SELECT DISTINCT stay_id, hour, greatest(starttime, intime + to_hours(hour)) AS t
    FROM infusion_hours
),
at_instant AS (  -- joined within the hour: pairs stay bounded by the infusions of one hour
    SELECT i.stay_id, i.hour, i.t,
           CASE WHEN bool_or(v.rate IS NULL AND v.nee_factor > 0) THEN NULL
                ELSE coalesce(fsum(v.rate * v.nee_factor), 0.0) END AS nee
    FROM instants i
    JOIN infusion_hours v
      ON v.stay_id = i.stay_id AND v.hour = i.hour
     AND v.starttime <= i.t
     AND (v.endtime > i.t OR (v.endtime = v.starttime AND v.starttime = i.t))
    GROUP BY i.stay_id, i.hour, i.t
)
SELECT stay_id, CAST(hour AS INTEGER) AS hour,
       CASE WHEN bool_or(nee IS NULL) THEN NULL ELSE round(max(nee), 6) END AS nee
FROM at_instant
GROUP BY stay_id, hour;

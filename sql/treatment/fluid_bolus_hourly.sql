-- fluid_bolus_hourly: mL of bolus fluid started in each grid hour (icu/inputevents).
-- Items: registry_fluid_items (NaCl 0.9% 225158, LR 225828, Albumin 5% 220864,
-- Albumin 25% 220862). A row is a bolus when its amount (converted to mL through
-- registry_volume_units) is >= getvariable('bolus_min_ml') and it ran for at most
-- getvariable('bolus_max_hours') hours. Amounts above getvariable('bolus_max_ml') mL are
-- charting errors and are ignored. A carrier ('Mixed solution': the fluid a drug is
-- mixed in) or a 'Drug Push' row is never a bolus. The bolus counts in the hour of its
-- starttime.
-- Columns: stay_id, hour, fluid_bolus_ml (mL, sum over boluses started in the hour).
CREATE TABLE fluid_bolus_hourly AS
WITH stays AS (
    SELECT g.stay_id, any_value(d.intime) AS intime, max(g.hour) + 1 AS n_hours
    FROM grid g JOIN icustay_detail d ON d.stay_id = g.stay_id
    GROUP BY g.stay_id
),
boluses AS (
    SELECT
        ie.stay_id,
        s.n_hours,
        CAST(floor(date_diff('second', s.intime, ie.starttime) / 3600.0) AS INTEGER) AS hour,
        ie.amount * u.mul AS ml
    FROM inputevents ie
    JOIN registry_fluid_items f ON f.itemid = ie.itemid
    JOIN registry_volume_units u ON u.amountuom = ie.amountuom
    JOIN stays s ON s.stay_id = ie.stay_id
    WHERE ie.starttime >= s.intime
      AND ie.amount * u.mul >= getvariable('bolus_min_ml')
      AND ie.amount * u.mul <= getvariable('bolus_max_ml')
      AND ie.ordercomponenttypedescription IS DISTINCT FROM 'Mixed solution'
      AND ie.ordercategorydescription IS DISTINCT FROM 'Drug Push'
      AND date_diff('second', ie.starttime, coalesce(ie.endtime, ie.starttime))
          <= getvariable('bolus_max_hours') * 3600
)
SELECT stay_id, hour, round(fsum(ml), 6) AS fluid_bolus_ml
FROM boluses
WHERE hour < n_hours
GROUP BY stay_id, hour;

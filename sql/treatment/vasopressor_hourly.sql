-- vasopressor_hourly: hourly vasopressor / inotrope infusion rates (icu/inputevents), long form.
-- Drugs: registry_vasopressors (norepinephrine 221906, epinephrine 221289, phenylephrine
-- 221749, dopamine 221662, vasopressin 222315, dobutamine 221653).
-- Units: canonical unit per drug (mcg/kg/min; vasopressin units/hour), converted from the
-- charted rateuom through registry_rate_units as mimic-code does: mg/kg/min x 1000,
-- mcg/min / patientweight (kg), units/min x 60. An unknown rateuom, a missing/implausible
-- weight for a per-weight conversion, a negative rate, or a rate above the drug's `hi`
-- bound is NULL (n_absurd).
-- Hourly value: an infusion [starttime, endtime) counts in every grid hour it overlaps;
-- the hour's rate is the MAX valid rate of the overlapping infusions (as mimic-code's
-- SOFA cardiovascular score), NULL when every overlapping row was absurd.
-- rate_at_end: the MAX valid rate of the infusions running at the END of the hour
-- (starttime < hour end <= endtime), what mimic-code's SOFA cardiovascular score reads
-- (sofa.sql joins each drug on `endtime > starttime AND endtime <= endtime`); NULL when
-- none runs then.
-- Columns: stay_id, hour, drug, rate, rate_at_end, n_rows, n_absurd (only hours with an
-- infusion).
CREATE TABLE vasopressor_hourly AS
WITH stays AS (
    SELECT g.stay_id, any_value(d.intime) AS intime, max(g.hour) + 1 AS n_hours
    FROM grid g JOIN icustay_detail d ON d.stay_id = g.stay_id
    GROUP BY g.stay_id
),
infusions AS (
    SELECT
        ie.stay_id,
        v.drug,
        s.n_hours,
        CASE WHEN u.unit = v.unit
             THEN ie.rate * u.mul / CASE WHEN u.per_weight THEN
                      CASE WHEN ie.patientweight BETWEEN getvariable('weight_lo') AND getvariable('weight_hi')
                           THEN ie.patientweight END
                  ELSE 1.0 END
        END AS r,
        v.hi,
        CAST(floor(date_diff('second', s.intime, ie.starttime) / 3600.0) AS BIGINT) AS h0,
        CAST(ceil(date_diff('second', s.intime, ie.endtime) / 3600.0) AS BIGINT) AS h1,
        date_diff('second', s.intime, ie.starttime) AS s0,                 -- seconds since intime
        date_diff('second', s.intime, ie.endtime) AS s1
    FROM inputevents ie
    JOIN registry_vasopressors v ON v.itemid = ie.itemid
    JOIN stays s ON s.stay_id = ie.stay_id
    LEFT JOIN registry_rate_units u ON u.rateuom = ie.rateuom
    WHERE (ie.rate IS NOT NULL OR ie.rate_raw IS NOT NULL)
      AND ie.starttime IS NOT NULL
),
hours AS (
    SELECT stay_id, drug, s0, s1,
           CASE WHEN r >= 0 AND r <= hi THEN r END AS rate,
           unnest(range(greatest(h0, 0), least(greatest(h1, h0 + 1), n_hours))) AS hour
    FROM infusions
)
SELECT
    stay_id,
    CAST(hour AS INTEGER) AS hour,
    drug,
    round(max(rate), 6) AS rate,
    round(max(rate) FILTER (WHERE s0 < (hour + 1) * 3600 AND (hour + 1) * 3600 <= s1), 6) AS rate_at_end,
    count(*) AS n_rows,
    count(*) FILTER (WHERE rate IS NULL) AS n_absurd
FROM hours
GROUP BY stay_id, hour, drug;

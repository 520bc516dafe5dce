-- events: first onset of each clinical event per stay (hours since ICU intime, floor).
--
--   death         ICU death: admissions.deathtime in [intime, outtime + 6 h]; when
--                 deathtime is missing, patients.dod (a date) between the dates of intime
--                 and outtime + 6 h. Onset = the hour of min(deathtime, outtime) (outtime
--                 when only dod is known). Deaths up to 6 h after ICU discharge count as
--                 ICU deaths (transfer/comfort-care charting lag).
--   vasopressor   vasopressor start: first hour with nee > 0 or any vasopressor/inotrope
--                 rate > 0 (norepinephrine, epinephrine, phenylephrine, dopamine, vasopressin,
--                 dobutamine)
--   ventilation   first hour with invasive ventilation (hourly.ventilation = 1)
--   rrt           first hour with renal replacement therapy (hourly.rrt = 1); for ESRD /
--                 maintenance-dialysis stays (esrd) the first hour of CONTINUOUS RRT
--                 (rrt_hourly.crrt = 1): their intermittent dialysis is not a new support
--   aki2          first hour with KDIGO stage >= 2 (kdigo_hourly)
--   circ_failure  first hour with lactate > 2 mmol/L (the last lactate of the past 6 h,
--                 this hour included) AND (MAP < 65 mmHg or any vasopressor/inotrope);
--                 HiRID circulatory failure (Hyland et al. Nat Med 2020) on MIMIC
--                 variables, as METHOD 7
--   resp_failure  first hour with P/F <= 300 mmHg (sofa_hourly.pf_ratio: the hour's lowest
--                 arterial PaO2/FiO2, bg_hourly) or invasive ventilation
--   sepsis        Sepsis-3 onset (sepsis3.onset_hour)
-- Hourly events use the grid hours of `hourly` (up to data.max_stay_hours); death can lie
-- past the last grid hour. A stay without an event has no row for it.
-- Columns: stay_id, event (VARCHAR), onset_hour (INTEGER).
-- Built in parts of stays like `hourly` (stay_id % stay_parts = stay_part, extract.PART_STAYS
-- stays each): the per-stay window and the joins below then hold one part at a time.
CREATE TABLE events AS
WITH death AS (
    SELECT
        d.stay_id,
        CAST(floor((epoch(least(coalesce(d.deathtime, d.outtime), d.outtime)) - epoch(d.intime)) / 3600.0)
             AS INTEGER) AS onset_hour
    FROM icustay_detail d
    JOIN cohort c ON c.stay_id = d.stay_id
    WHERE d.stay_id % getvariable('stay_parts') = getvariable('stay_part')
      AND ((d.deathtime IS NOT NULL
           AND d.deathtime >= d.intime
           AND d.deathtime <= d.outtime + INTERVAL 6 HOUR)
       OR (d.deathtime IS NULL
           AND d.dod IS NOT NULL
           AND CAST(d.dod AS DATE) >= CAST(d.intime AS DATE)
           AND CAST(d.dod AS DATE) <= CAST(d.outtime + INTERVAL 6 HOUR AS DATE)))
),
hours AS (
    SELECT
        h.stay_id, h.hour, h.ventilation, h.mbp, k.kdigo_stage, s.pf_ratio,
        CASE WHEN es.stay_id IS NULL THEN h.rrt ELSE coalesce(r.crrt, 0) END AS rrt,
        (h.nee > 0 OR h.norepinephrine > 0 OR h.epinephrine > 0 OR h.phenylephrine > 0
         OR h.dopamine > 0 OR h.vasopressin > 0 OR h.dobutamine > 0) AS on_vasoactive,
        last_value(h.lactate IGNORE NULLS) OVER (
            PARTITION BY h.stay_id ORDER BY h.hour ROWS BETWEEN 6 PRECEDING AND CURRENT ROW  -- dense hours
        ) AS lactate_cf                                                 -- mmol/L, <= 6 h old
    FROM (SELECT * FROM hourly WHERE stay_id % getvariable('stay_parts') = getvariable('stay_part')) h
    LEFT JOIN (SELECT stay_id, hour, kdigo_stage FROM kdigo_hourly
               WHERE stay_id % getvariable('stay_parts') = getvariable('stay_part')) k
        ON k.stay_id = h.stay_id AND k.hour = h.hour
    LEFT JOIN (SELECT stay_id, hour, pf_ratio FROM sofa_hourly
               WHERE stay_id % getvariable('stay_parts') = getvariable('stay_part')) s
        ON s.stay_id = h.stay_id AND s.hour = h.hour
    LEFT JOIN (SELECT stay_id, hour, crrt FROM rrt_hourly
               WHERE stay_id % getvariable('stay_parts') = getvariable('stay_part')) r
        ON r.stay_id = h.stay_id AND r.hour = h.hour
    LEFT JOIN esrd es ON es.stay_id = h.stay_id
),
firsts AS (
    SELECT
        x.stay_id,
        min(x.hour) FILTER (WHERE x.on_vasoactive) AS vasopressor,
        min(x.hour) FILTER (WHERE x.ventilation = 1) AS ventilation,
        min(x.hour) FILTER (WHERE x.rrt = 1) AS rrt,
        min(x.hour) FILTER (WHERE x.kdigo_stage >= 2) AS aki2,
        min(x.hour) FILTER (WHERE x.lactate_cf > 2 AND (x.mbp < 65 OR x.on_vasoactive)) AS circ_failure,
        min(x.hour) FILTER (WHERE x.pf_ratio <= 300 OR x.ventilation = 1) AS resp_failure
    FROM hours x
    GROUP BY x.stay_id
),
hourly_events AS (
    UNPIVOT firsts
    ON vasopressor, ventilation, rrt, aki2, circ_failure, resp_failure
    INTO NAME event VALUE onset_hour
)
SELECT stay_id, event, CAST(onset_hour AS INTEGER) AS onset_hour
FROM (
    SELECT stay_id, 'death' AS event, onset_hour FROM death
    UNION ALL
    SELECT stay_id, event, onset_hour FROM hourly_events
    UNION ALL
    SELECT stay_id, 'sepsis' AS event, onset_hour FROM sepsis3
    WHERE stay_id % getvariable('stay_parts') = getvariable('stay_part')
)
ORDER BY stay_id, event;

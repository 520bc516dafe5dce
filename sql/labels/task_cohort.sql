-- task_cohort: which cohort stays each of the 15 prediction tasks uses, and why the
-- others are excluded. One row per (stay, task); exclusion NULL = the stay is in the task.
--
-- A task predicted at hour H sees the hours 0..H-1 (per-stay tasks: H =
-- getvariable('prediction_hour')) or 0..h (early-event tasks at hour h), so an event
-- already visible then cannot be its label (YAIB, van de Water et al. ICLR 2024). Rules,
-- first match wins (task_attrition counts them in this order):
--   per-stay tasks (mort_*, los_7d, sepsis)
--     1 'left the ICU before hour H'            cohort.los_hours < H
--     2 'died before hour H'                    mort_*: deathtime (precise) < intime + H h
--     2 'Sepsis-3 onset before hour H'          sepsis: events.sepsis onset_hour < H
--   early-event tasks (eep_*)
--     1 'end-stage renal disease / maintenance dialysis'   eep_aki, eep_rrt_start (esrd)
--     2 'event at ICU admission (hour 0)'       the event's onset_hour = 0: no stable hour
-- los_7d has no rule 2: a stay in the ICU at H has not yet reached 7 days (H < 168).
-- Columns: stay_id, task, exclusion (VARCHAR, NULL = included).
CREATE TABLE task_cohort AS
WITH tasks(task, event, per_stay, esrd_excluded) AS (
    VALUES
        ('mort_hosp', 'death_any', true, false),
        ('mort_icu', 'death_any', true, false),
        ('mort_7d', 'death_any', true, false),
        ('mort_14d', 'death_any', true, false),
        ('mort_30d', 'death_any', true, false),
        ('mort_90d', 'death_any', true, false),
        ('los_7d', NULL, true, false),
        ('sepsis', 'sepsis', true, false),
        ('eep_circ_failure', 'circ_failure', false, false),
        ('eep_resp_failure', 'resp_failure', false, false),
        ('eep_aki', 'aki2', false, true),
        ('eep_vaso_start', 'vasopressor', false, false),
        ('eep_vent_start', 'ventilation', false, false),
        ('eep_rrt_start', 'rrt', false, true),
        ('eep_death_24h', 'death', false, false)
),
stay AS (
    SELECT
        c.stay_id, c.los_hours,
        -- hours from intime to a precisely known death (any place), NULL when none
        CASE WHEN d.deathtime IS NOT NULL
             THEN (epoch(d.deathtime) - epoch(d.intime)) / 3600.0 END AS death_hours,
        e.stay_id IS NOT NULL AS is_esrd
    FROM cohort c
    JOIN icustay_detail d ON d.stay_id = c.stay_id
    LEFT JOIN esrd e ON e.stay_id = c.stay_id
)
SELECT
    s.stay_id, t.task,
    CASE
        WHEN t.per_stay AND s.los_hours < getvariable('prediction_hour')
            THEN 'left the ICU before hour ' || getvariable('prediction_hour')
        WHEN t.per_stay AND t.event = 'death_any' AND s.death_hours < getvariable('prediction_hour')
            THEN 'died before hour ' || getvariable('prediction_hour')
        WHEN t.per_stay AND t.event = 'sepsis' AND ev.onset_hour < getvariable('prediction_hour')
            THEN 'Sepsis-3 onset before hour ' || getvariable('prediction_hour')
        WHEN NOT t.per_stay AND t.esrd_excluded AND s.is_esrd
            THEN 'end-stage renal disease / maintenance dialysis'
        WHEN NOT t.per_stay AND ev.onset_hour <= 0
            THEN 'event at ICU admission (hour 0)'
    END AS exclusion
FROM stay s
CROSS JOIN tasks t
LEFT JOIN events ev ON ev.stay_id = s.stay_id AND ev.event = t.event;

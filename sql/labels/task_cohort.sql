-- task_cohort: which cohort stays each prediction task uses, and why the others are
-- excluded. One row per (stay, task); exclusion NULL = the stay is in the task.
-- The tasks and the rules each one applies come from the task files (configs/tasks/*.yaml,
-- registry_tasks: ex_<rule> flags, prediction_hour, event; clin_jepa/data/task_defs.py).
--
-- A task predicted at hour H sees the hours 0..H-1 (per-stay tasks: H =
-- getvariable('prediction_hour')) or 0..h (early-event tasks at hour h), so an event
-- already visible then cannot be its label (YAIB, van de Water et al. ICLR 2024). Rules,
-- first match wins (task_attrition counts them in this order):
--   per-stay tasks (mort_*, los_7d, sepsis)
--     1 left_icu     'left the ICU before hour H'       cohort.los_hours < H
--     2 died         'died before hour H'               mort_*: deathtime (precise) < intime + H h
--     2 event_before 'Sepsis-3 onset before hour H'     sepsis: events.sepsis onset_hour < H
--   early-event tasks (eep_*)
--     1 esrd         'end-stage renal disease / maintenance dialysis'   eep_aki, eep_rrt_start
--     2 event_at_admission 'event at ICU admission (hour 0)'  onset_hour = 0: no stable hour
-- los_7d has no rule 2: a stay in the ICU at H has not yet reached 7 days (H < 168).
-- Columns: stay_id, task, exclusion (VARCHAR, NULL = included).
CREATE TABLE task_cohort AS
WITH stay AS (
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
        WHEN t.ex_left_icu AND s.los_hours < t.prediction_hour
            THEN 'left the ICU before hour ' || t.prediction_hour
        WHEN t.ex_died AND s.death_hours < t.prediction_hour
            THEN 'died before hour ' || t.prediction_hour
        WHEN t.ex_event_before AND ev.onset_hour < t.prediction_hour
            THEN t.event_label || ' onset before hour ' || t.prediction_hour
        WHEN t.ex_esrd AND s.is_esrd
            THEN 'end-stage renal disease / maintenance dialysis'
        WHEN t.ex_event_at_admission AND ev.onset_hour <= 0
            THEN 'event at ICU admission (hour 0)'
    END AS exclusion
FROM stay s
CROSS JOIN registry_tasks t
LEFT JOIN events ev ON ev.stay_id = s.stay_id AND ev.event = t.event;

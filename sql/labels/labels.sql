-- labels: the prediction tasks in long form (stay_id, task, hour, label TINYINT 0/1).
-- One task per file of configs/tasks/ (registry_tasks, clin_jepa/data/task_defs.py): its
-- family, prediction hour H, outcome kind, event, horizon and gap. The built-in 15:
--
-- Only stays that task_cohort keeps for a task get rows of that task (exclusion IS NULL;
-- the exclusions and their counts are in task_cohort / task_attrition). A label never
-- counts an event the model input already shows.
--
-- Per-stay tasks (family binary, METHOD 7), one row per stay with hour = H (24 h); the
-- input is hours 0..H-1. Stays that left the ICU before H, died before H (mortality
-- tasks) or had a Sepsis-3 onset before H (sepsis) are excluded:
--   mort_hosp     hospital_death: admissions.hospital_expire_flag
--   mort_icu      event death: an ICU death (events.death; deaths up to 6 h after ICU
--                 outtime count)
--   mort_Nd       death_within_days N = 7, 14, 30, 90: death within N days of ICU intime:
--                 deathtime <= intime + N days, else patients.dod <= date(intime + N days)
--   los_7d        los_over_hours 168: ICU length of stay > 168 h
--   sepsis        event_from_prediction_hour sepsis: Sepsis-3 onset at hour >= H
-- Early-event tasks (YAIB / ICareFM style), one row per grid hour h that is still
-- "stable" for that task: h < the event's first onset (all hours when it never happens;
-- for the *_start tasks this means the patient is not yet on the therapy). No rows at or
-- after the onset. label = 1 iff onset in (h + gap, h + gap + horizon] (horizon 12 h =
-- data.eep_horizon, gap 0; for death 24 h); with a gap, hours whose onset lies within
-- (h, h + gap] have no row. ESRD / maintenance-dialysis stays are not in eep_aki, eep_rrt_start.
--   eep_circ_failure  circ_failure     eep_vaso_start  vasopressor
--   eep_resp_failure  resp_failure     eep_vent_start  ventilation
--   eep_aki           aki2             eep_rrt_start   rrt
--   eep_death_24h     death
CREATE TABLE labels AS
WITH stay AS (
    SELECT
        c.stay_id, c.los_hours, d.intime, d.deathtime, d.dod, d.hospital_expire_flag
    FROM cohort c
    JOIN icustay_detail d ON d.stay_id = c.stay_id
),
kept AS (
    SELECT stay_id, task FROM task_cohort WHERE exclusion IS NULL
),
per_stay AS (
    SELECT
        s.stay_id, t.task, t.prediction_hour AS hour,
        CASE t.outcome
            WHEN 'hospital_death' THEN coalesce(s.hospital_expire_flag, 0) = 1
            WHEN 'event' THEN EXISTS (SELECT 1 FROM events e WHERE e.stay_id = s.stay_id AND e.event = t.event)
            WHEN 'event_from_prediction_hour' THEN EXISTS (
                SELECT 1 FROM events e
                WHERE e.stay_id = s.stay_id AND e.event = t.event AND e.onset_hour >= t.prediction_hour)
            WHEN 'death_within_days' THEN  -- precise deathtime, else the dod date
                CASE
                    WHEN s.deathtime IS NOT NULL THEN s.deathtime <= s.intime + to_days(t.days)
                    WHEN s.dod IS NOT NULL THEN CAST(s.dod AS DATE) <= CAST(s.intime + to_days(t.days) AS DATE)
                    ELSE false
                END
            WHEN 'los_over_hours' THEN s.los_hours > t.hours
        END AS positive
    FROM stay s
    JOIN registry_tasks t ON t.family = 'binary'
    SEMI JOIN kept k ON k.stay_id = s.stay_id AND k.task = t.task
),
eep AS (
    SELECT
        g.stay_id, t.task, g.hour,
        e.onset_hour IS NOT NULL AND e.onset_hour > g.hour + t.gap
            AND e.onset_hour <= g.hour + t.gap + t.horizon AS positive
    FROM grid g
    JOIN cohort c ON c.stay_id = g.stay_id
    JOIN registry_tasks t ON t.family = 'eep'
    SEMI JOIN kept k ON k.stay_id = g.stay_id AND k.task = t.task
    LEFT JOIN events e ON e.stay_id = g.stay_id AND e.event = t.event
    WHERE e.onset_hour IS NULL OR g.hour < e.onset_hour - t.gap
)
SELECT stay_id, task, hour, label
FROM (
    SELECT stay_id, task, CAST(hour AS INTEGER) AS hour, CAST(positive AS TINYINT) AS label FROM per_stay
    UNION ALL
    SELECT stay_id, task, CAST(hour AS INTEGER), CAST(positive AS TINYINT) FROM eep
);

-- labels: the 15 prediction tasks in long form (stay_id, task, hour, label TINYINT 0/1).
--
-- Only stays that task_cohort keeps for a task get rows of that task (exclusion IS NULL;
-- the exclusions and their counts are in task_cohort / task_attrition). A label never
-- counts an event the model input already shows.
--
-- Per-stay tasks (METHOD 7), one row per stay with hour = prediction_hour H (24 h); the
-- input is hours 0..H-1. Stays that left the ICU before H, died before H (mortality
-- tasks) or had a Sepsis-3 onset before H (sepsis) are excluded:
--   mort_hosp     admissions.hospital_expire_flag
--   mort_icu      an ICU death (events.death; deaths up to 6 h after ICU outtime count)
--   mort_Nd       N = 7, 14, 30, 90: death within N days of ICU intime: deathtime <=
--                 intime + N days, else patients.dod <= date(intime + N days)
--   los_7d        ICU length of stay > 168 h
--   sepsis        Sepsis-3 onset at hour >= H (events.sepsis)
-- Early-event tasks (YAIB / ICareFM style), one row per grid hour h that is still
-- "stable" for that task: h < the event's first onset (all hours when it never happens;
-- for the *_start tasks this means the patient is not yet on the therapy). No rows at or
-- after the onset. label = 1 iff onset in (h, h + eep_horizon] (12 h); for death
-- in (h, h + 24]. ESRD / maintenance-dialysis stays are not in eep_aki, eep_rrt_start.
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
died_within AS (  -- death within N days of ICU intime (precise deathtime, else the dod date)
    SELECT
        s.stay_id, n.days,
        CASE
            WHEN s.deathtime IS NOT NULL THEN s.deathtime <= s.intime + to_days(n.days)
            WHEN s.dod IS NOT NULL THEN CAST(s.dod AS DATE) <= CAST(s.intime + to_days(n.days) AS DATE)
            ELSE false
        END AS died
    FROM stay s
    CROSS JOIN (VALUES (7), (14), (30), (90)) n(days)
),
per_stay AS (
    SELECT s.stay_id, 'mort_hosp' AS task, coalesce(s.hospital_expire_flag, 0) = 1 AS positive FROM stay s
    UNION ALL
    SELECT s.stay_id, 'mort_icu', EXISTS (SELECT 1 FROM events e WHERE e.stay_id = s.stay_id AND e.event = 'death')
    FROM stay s
    UNION ALL
    SELECT stay_id, 'mort_' || days || 'd', died FROM died_within
    UNION ALL
    SELECT s.stay_id, 'los_7d', s.los_hours > 168 FROM stay s
    UNION ALL
    SELECT s.stay_id, 'sepsis', EXISTS (SELECT 1 FROM events e WHERE e.stay_id = s.stay_id AND e.event = 'sepsis'
                                        AND e.onset_hour >= getvariable('prediction_hour'))
    FROM stay s
),
kept AS (
    SELECT stay_id, task FROM task_cohort WHERE exclusion IS NULL
),
eep_tasks AS (
    SELECT * FROM (VALUES
        ('eep_circ_failure', 'circ_failure', getvariable('eep_horizon')),
        ('eep_resp_failure', 'resp_failure', getvariable('eep_horizon')),
        ('eep_aki', 'aki2', getvariable('eep_horizon')),
        ('eep_vaso_start', 'vasopressor', getvariable('eep_horizon')),
        ('eep_vent_start', 'ventilation', getvariable('eep_horizon')),
        ('eep_rrt_start', 'rrt', getvariable('eep_horizon')),
        ('eep_death_24h', 'death', 24)
    ) t(task, event, horizon)
),
eep AS (
    SELECT
        g.stay_id, t.task, g.hour,
        e.onset_hour IS NOT NULL AND e.onset_hour <= g.hour + t.horizon AS positive
    FROM grid g
    JOIN cohort c ON c.stay_id = g.stay_id
    CROSS JOIN eep_tasks t
    SEMI JOIN kept k ON k.stay_id = g.stay_id AND k.task = t.task
    LEFT JOIN events e ON e.stay_id = g.stay_id AND e.event = t.event
    WHERE e.onset_hour IS NULL OR g.hour < e.onset_hour
)
SELECT stay_id, task, hour, label
FROM (
    SELECT stay_id, task, CAST(getvariable('prediction_hour') AS INTEGER) AS hour,
           CAST(positive AS TINYINT) AS label
    FROM per_stay p
    SEMI JOIN kept k ON k.stay_id = p.stay_id AND k.task = p.task
    UNION ALL
    SELECT stay_id, task, CAST(hour AS INTEGER), CAST(positive AS TINYINT) FROM eep
);

-- suspected_infection: Sepsis-3 suspicion of infection episodes, hours relative to ICU intime.
--
-- An antibiotic order (`antibiotic`: mimic-code's antibiotic list and exclusions) counts
-- when a culture
-- (hosp/microbiologyevents, any specimen type; charttime, else chartdate at 00:00) was taken
--   * within 72 h BEFORE the antibiotic  -> onset = the (earliest such) culture time, or
--   * within 24 h AFTER the antibiotic   -> onset = the antibiotic start time,
-- i.e. the onset is the earlier of the two (Seymour et al. JAMA 2016; Singer et al. JAMA
-- 2016; MIT-LCP mimic-code mimic-iv/concepts/sepsis/suspicion_of_infection.sql).
--
-- Antibiotics are linked to a stay by subject and time: started from 24 h before ICU
-- intime (ED / ward antibiotics leading to the ICU admission) until ICU outtime, so an
-- onset hour can be negative (down to -96 h when the culture preceded a pre-ICU dose).
-- One row per distinct onset hour; episode 1 is the first suspicion of the stay.
-- Columns: stay_id, episode, onset_hour, antibiotic_hour, culture_hour (INTEGER hours
-- since intime, floor).
CREATE TABLE suspected_infection AS
WITH stays AS (
    SELECT d.stay_id, d.subject_id, d.intime, d.outtime
    FROM icustay_detail d
    JOIN cohort c ON c.stay_id = d.stay_id
),
antibiotic AS (
    SELECT DISTINCT s.stay_id, s.intime, p.starttime AS abx_time
    FROM antibiotic p
    JOIN stays s ON s.subject_id = p.subject_id
    WHERE p.starttime >= s.intime - INTERVAL 24 HOUR
      AND p.starttime < s.outtime
),
culture AS (
    SELECT DISTINCT s.stay_id, coalesce(m.charttime, CAST(m.chartdate AS TIMESTAMP)) AS culture_time
    FROM microbiologyevents m
    JOIN stays s ON s.subject_id = m.subject_id
    WHERE coalesce(m.charttime, CAST(m.chartdate AS TIMESTAMP))
          BETWEEN s.intime - INTERVAL 96 HOUR AND s.outtime + INTERVAL 24 HOUR
),
paired AS (  -- per antibiotic: earliest culture in [-72 h, 0] and in (0, +24 h]
    SELECT
        a.stay_id, a.intime, a.abx_time,
        min(c.culture_time) FILTER (WHERE c.culture_time <= a.abx_time) AS culture_before,
        min(c.culture_time) FILTER (WHERE c.culture_time > a.abx_time) AS culture_after
    FROM antibiotic a
    JOIN culture c
      ON c.stay_id = a.stay_id
     AND c.culture_time >= a.abx_time - INTERVAL 72 HOUR
     AND c.culture_time <= a.abx_time + INTERVAL 24 HOUR
    GROUP BY a.stay_id, a.intime, a.abx_time
),
onsets AS (
    SELECT
        stay_id,
        CAST(floor((epoch(coalesce(culture_before, abx_time)) - epoch(intime)) / 3600.0) AS INTEGER) AS onset_hour,
        CAST(floor((epoch(abx_time) - epoch(intime)) / 3600.0) AS INTEGER) AS antibiotic_hour,
        CAST(floor((epoch(coalesce(culture_before, culture_after)) - epoch(intime)) / 3600.0) AS INTEGER) AS culture_hour
    FROM paired
),
dedup AS (  -- one row per onset hour (the earliest antibiotic giving it)
    SELECT stay_id, onset_hour, min(antibiotic_hour) AS antibiotic_hour, min(culture_hour) AS culture_hour
    FROM onsets
    GROUP BY stay_id, onset_hour
)
SELECT
    stay_id,
    CAST(row_number() OVER (PARTITION BY stay_id ORDER BY onset_hour) AS INTEGER) AS episode,
    onset_hour, antibiotic_hour, culture_hour
FROM dedup
ORDER BY stay_id, episode;

-- gcs_hourly: Glasgow Coma Scale total per stay-hour, as MIT-LCP mimic-code
-- mimic-iv/concepts/measurement/gcs.sql (the GCS that SOFA's CNS score reads).
-- Per charting time (icu/chartevents eye 220739, verbal 223900, motor 223901; worst
-- value when a component is charted twice at that time):
--   * a verbal charted as value 'No Response-ETT' (intubated; valuenum 1 in MIMIC-IV) is
--     verbal 0 = "unable": the GCS of that time is 15 (the patient's GCS is taken as
--     normal before sedation, as mimic-code and the SAPS II convention);
--   * the previous charting time of the stay, if less than 6 h earlier, fills missing
--     components; when that previous verbal was ETT and the current verbal is missing,
--     the GCS is 15; when the previous verbal was ETT but the current one is not, the
--     previous components are not used;
--   * components still missing are taken as normal (eye 4, verbal 5, motor 6).
-- Values outside the registry range (registry_items lo/hi) are ignored.
-- Hourly value: the lowest GCS of the charting times in the hour (mimic-code sofa.sql
-- gcs_min); unable = 1 when an ETT verbal was charted in the hour.
-- Columns: stay_id, hour, gcs (3-15), unable (TINYINT 0/1).
CREATE TABLE gcs_hourly AS
WITH stays AS (
    SELECT g.stay_id, any_value(d.intime) AS intime, max(g.hour) + 1 AS n_hours
    FROM grid g JOIN icustay_detail d ON d.stay_id = g.stay_id
    GROUP BY g.stay_id
),
items AS (
    SELECT r.itemid, r.feature, r.lo, r.hi
    FROM registry_items r
    WHERE r.feature IN ('gcs_eye', 'gcs_verbal', 'gcs_motor')
),
base AS (  -- one row per charting time
    SELECT
        ce.stay_id, ce.charttime,
        min(ce.valuenum) FILTER (WHERE i.feature = 'gcs_eye' AND ce.valuenum BETWEEN i.lo AND i.hi) AS eye,
        min(CASE WHEN ce.value = 'No Response-ETT' THEN 0 ELSE ce.valuenum END)
            FILTER (WHERE i.feature = 'gcs_verbal'
                      AND (ce.value = 'No Response-ETT' OR ce.valuenum BETWEEN i.lo AND i.hi)) AS verbal,
        min(ce.valuenum) FILTER (WHERE i.feature = 'gcs_motor' AND ce.valuenum BETWEEN i.lo AND i.hi) AS motor
    FROM chartevents ce
    JOIN items i ON i.itemid = ce.itemid
    SEMI JOIN stays s ON s.stay_id = ce.stay_id
    GROUP BY ce.stay_id, ce.charttime
),
with_prev AS (
    SELECT
        *,
        lag(charttime) OVER w AS prev_time,
        lag(eye) OVER w AS prev_eye,
        lag(verbal) OVER w AS prev_verbal,
        lag(motor) OVER w AS prev_motor
    FROM base
    WINDOW w AS (PARTITION BY stay_id ORDER BY charttime)
),
scored AS (
    SELECT
        stay_id, charttime, verbal,
        CASE WHEN prev_time > charttime - INTERVAL 6 HOUR THEN prev_verbal END AS pv,
        CASE WHEN prev_time > charttime - INTERVAL 6 HOUR THEN prev_eye END AS pe,
        CASE WHEN prev_time > charttime - INTERVAL 6 HOUR THEN prev_motor END AS pm,
        eye, motor
    FROM with_prev
),
gcs AS (
    SELECT
        stay_id, charttime,
        CASE
            WHEN verbal = 0 THEN 15
            WHEN verbal IS NULL AND pv = 0 THEN 15
            WHEN pv = 0 THEN coalesce(motor, 6) + coalesce(verbal, 5) + coalesce(eye, 4)
            ELSE coalesce(motor, pm, 6) + coalesce(verbal, pv, 5) + coalesce(eye, pe, 4)
        END AS gcs,
        verbal = 0 AS ett
    FROM scored
)
SELECT
    g.stay_id,
    CAST(floor(date_diff('second', s.intime, g.charttime) / 3600.0) AS INTEGER) AS hour,
    min(g.gcs) AS gcs,
    CAST(coalesce(bool_or(g.ett), false) AS TINYINT) AS unable
FROM gcs g
JOIN stays s ON s.stay_id = g.stay_id
WHERE g.charttime >= s.intime
  AND date_diff('second', s.intime, g.charttime) < s.n_hours * 3600
GROUP BY ALL;

-- bg_hourly: arterial PaO2/FiO2 ratio per stay-hour, as MIT-LCP mimic-code
-- mimic-iv/concepts/measurement/bg.sql (the P/F that SOFA's respiration score reads).
-- A blood gas is one hosp/labevents specimen (specimen_id). Its specimen type is the
-- text of the 'Specimen Type' row of the same specimen (registry_bg 'specimen': 52033);
-- only arterial gases ('ART.') with a pO2 (registry feature 'po2': 50821, valid range)
-- count; venous, mixed and central-venous gases, and gases without a specimen row, do not.
-- FiO2 (%): the gas's own FiO2 row (registry_bg 'fio2': 50816) when present, else the
-- latest charted FiO2 (registry feature 'fio2': chartevents 223835) of the stay in the
-- 4 h up to the gas time. Both as mimic-code: a value in (0.2, 1] is a fraction (x 100),
-- one in [20, 100] (bg: (20, 100]) a percent, anything else is ignored.
-- P/F = 100 x pO2 / FiO2 (mmHg). A gas belongs to the cohort stay of its hadm_id whose
-- grid holds its charttime (lab_lookback_hours before intime count in hour 0, as labs).
-- Hourly value: the lowest P/F of the hour's arterial gases.
-- Columns: stay_id, hour, pf_ratio (mmHg), fio2_from_bg (TINYINT: 1 = the lowest gas
-- used its own FiO2).
CREATE TABLE bg_hourly AS
WITH stays AS (
    SELECT g.stay_id, any_value(c.hadm_id) AS hadm_id, any_value(d.intime) AS intime,
           max(g.hour) + 1 AS n_hours
    FROM grid g
    JOIN cohort c ON c.stay_id = g.stay_id
    JOIN icustay_detail d ON d.stay_id = g.stay_id
    GROUP BY g.stay_id
),
po2_item AS (
    SELECT itemid, lo, hi FROM registry_items WHERE feature = 'po2'
),
specimens AS (  -- one row per blood-gas specimen with a pO2
    SELECT
        le.specimen_id,
        any_value(le.hadm_id) AS hadm_id,
        max(le.charttime) AS charttime,
        max(le.value) FILTER (WHERE le.itemid = (SELECT itemid FROM registry_bg WHERE role = 'specimen'))
            AS specimen,
        max(le.valuenum) FILTER (WHERE le.itemid IN (SELECT itemid FROM po2_item)
                                   AND le.valuenum BETWEEN (SELECT min(lo) FROM po2_item)
                                                       AND (SELECT max(hi) FROM po2_item)) AS po2,
        max(CASE WHEN le.valuenum > 20 AND le.valuenum <= 100 THEN le.valuenum
                 WHEN le.valuenum > 0.2 AND le.valuenum <= 1 THEN le.valuenum * 100 END)
            FILTER (WHERE le.itemid = (SELECT itemid FROM registry_bg WHERE role = 'fio2')) AS fio2_bg
    FROM labevents le
    WHERE le.itemid IN (SELECT itemid FROM registry_bg UNION ALL SELECT itemid FROM po2_item)
      AND le.specimen_id IS NOT NULL
    GROUP BY le.specimen_id
),
gases AS (
    SELECT
        s.stay_id, s.intime, s.n_hours, sp.charttime, sp.po2, sp.fio2_bg,
        CAST(greatest(0, floor(date_diff('second', s.intime, sp.charttime) / 3600.0)) AS INTEGER) AS hour
    FROM specimens sp
    JOIN stays s ON s.hadm_id = sp.hadm_id
    WHERE sp.specimen = 'ART.'
      AND sp.po2 IS NOT NULL
      AND sp.charttime >= s.intime - to_seconds(CAST(getvariable('lab_lookback_hours') * 3600 AS BIGINT))
),
charted_fio2 AS (
    SELECT ce.stay_id, ce.charttime,
           max(CASE WHEN ce.valuenum > 0.2 AND ce.valuenum <= 1 THEN ce.valuenum * 100
                    WHEN ce.valuenum >= 20 AND ce.valuenum <= 100 THEN ce.valuenum END) AS fio2
    FROM chartevents ce
    WHERE ce.itemid IN (SELECT itemid FROM registry_items WHERE feature = 'fio2')
      AND ce.stay_id IN (SELECT stay_id FROM stays)
    GROUP BY ce.stay_id, ce.charttime
    HAVING max(CASE WHEN ce.valuenum > 0.2 AND ce.valuenum <= 1 THEN ce.valuenum * 100
                    WHEN ce.valuenum >= 20 AND ce.valuenum <= 100 THEN ce.valuenum END) IS NOT NULL
),
with_fio2 AS (
    SELECT
        g.stay_id, g.hour, g.n_hours, g.po2, g.fio2_bg,
        arg_max(c.fio2, c.charttime) AS fio2_chart
    FROM gases g
    LEFT JOIN charted_fio2 c
      ON c.stay_id = g.stay_id
     AND c.charttime BETWEEN g.charttime - INTERVAL 4 HOUR AND g.charttime
    GROUP BY ALL
)
SELECT
    stay_id, hour,
    round(min(100.0 * po2 / coalesce(fio2_bg, fio2_chart)), 6) AS pf_ratio,
    CAST(arg_min(fio2_bg IS NOT NULL, 100.0 * po2 / coalesce(fio2_bg, fio2_chart)) AS TINYINT) AS fio2_from_bg
FROM with_fio2
WHERE hour < n_hours AND coalesce(fio2_bg, fio2_chart) IS NOT NULL
GROUP BY stay_id, hour;

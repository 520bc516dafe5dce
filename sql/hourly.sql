-- hourly: the exported hourly table = hourly_base + derived clinical concepts.
--
-- One row per stay-hour (hour 0 = ICU intime). Column order: stay_id, hour, the
-- observation columns (features.OBSERVATION_COLUMNS), the action columns
-- (features.ACTION_COLUMNS), then
--   sofa         24 h rolling SOFA (sofa_hourly.sofa, 0-24; missing components score 0)
--   kdigo_stage  KDIGO AKI stage of the hour (kdigo_hourly.kdigo_stage, 0-3)
-- Both are TINYINT and never NULL. Row order is left to the export (ORDER BY ALL).
-- Built in parts of stays (stay_id % stay_parts = stay_part; clin_jepa.data.extract runs
-- it once per part, extract.PART_STAYS stays each) so that the join's hash tables stay
-- small whatever the number of stays; the filter is on all three tables.
CREATE TABLE hourly AS
SELECT
    b.*,
    CAST(coalesce(s.sofa, 0) AS TINYINT) AS sofa,
    CAST(coalesce(k.kdigo_stage, 0) AS TINYINT) AS kdigo_stage
FROM (SELECT * FROM hourly_base WHERE stay_id % getvariable('stay_parts') = getvariable('stay_part')) b
LEFT JOIN (SELECT stay_id, hour, sofa FROM sofa_hourly
           WHERE stay_id % getvariable('stay_parts') = getvariable('stay_part')) s
    ON s.stay_id = b.stay_id AND s.hour = b.hour
LEFT JOIN (SELECT stay_id, hour, kdigo_stage FROM kdigo_hourly
           WHERE stay_id % getvariable('stay_parts') = getvariable('stay_part')) k
    ON k.stay_id = b.stay_id AND k.hour = b.hour;

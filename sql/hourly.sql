-- hourly: the exported hourly table = hourly_base + derived clinical concepts.
--
-- One row per stay-hour (hour 0 = ICU intime). Column order: stay_id, hour, the
-- observation columns (features.OBSERVATION_COLUMNS), the action columns
-- (features.ACTION_COLUMNS), then
--   sofa         24 h rolling SOFA (sofa_hourly.sofa, 0-24; missing components score 0)
--   kdigo_stage  KDIGO AKI stage of the hour (kdigo_hourly.kdigo_stage, 0-3)
-- Both are TINYINT and never NULL. Row order is left to the export (ORDER BY ALL).
CREATE TABLE hourly AS
SELECT
    b.*,
    CAST(coalesce(s.sofa, 0) AS TINYINT) AS sofa,
    CAST(coalesce(k.kdigo_stage, 0) AS TINYINT) AS kdigo_stage
FROM hourly_base b
LEFT JOIN sofa_hourly s ON s.stay_id = b.stay_id AND s.hour = b.hour
LEFT JOIN kdigo_hourly k ON k.stay_id = b.stay_id AND k.hour = b.hour;

-- esrd: cohort stays of patients with end-stage renal disease or on maintenance dialysis.
-- A stay is ESRD when its hospital admission (hosp/diagnoses_icd, same hadm_id) carries a
-- code starting with one of registry_esrd_icd (features.ESRD_ICD_PREFIXES: ICD-9 585.6,
-- V45.11, V56.x; ICD-10 N18.6, Z99.2, Z49.x; codes are stored without dots). Diagnoses
-- are coded at discharge, but these codes describe a chronic state present before the
-- ICU stay (dialysis dependence), so reading them does not look into the stay's future.
-- Uses (docs/labels.md): the `rrt` event of an ESRD stay is its first CONTINUOUS RRT
-- hour (maintenance haemodialysis / peritoneal dialysis is not a new organ support), and
-- ESRD stays are excluded (counted in task_attrition) from eep_aki and eep_rrt_start.
-- Columns: stay_id (one row per ESRD stay).
CREATE TABLE esrd AS
SELECT DISTINCT c.stay_id
FROM cohort c
JOIN diagnoses_icd dx ON dx.hadm_id = c.hadm_id
JOIN registry_esrd_icd r
  ON TRY_CAST(trim(dx.icd_version) AS INTEGER) = r.icd_version
 AND starts_with(upper(replace(trim(dx.icd_code), '.', '')), r.prefix);

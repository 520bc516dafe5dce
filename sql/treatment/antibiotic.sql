-- antibiotic: systemic antibiotic orders (hosp/prescriptions), as MIT-LCP mimic-code
-- mimic-iv/concepts/medication/antibiotic.sql. The rules are data: registry_antibiotic
-- (sql/registry/antibiotic.csv, about 150 drug patterns). An order is an antibiotic when
--   lower(drug) contains a 'drug' pattern and no 'not_drug' pattern (cream, gel, eye
--   ointment, desensitization), its route is present, not exactly a 'not_route' (OU, OS,
--   OD, AU, AS, AD, TP: eye, ear, topical) and contains no 'not_route_has' ('ear',
--   'eye'), and its drug_type is not a 'not_drug_type' (BASE: diluent solutions).
-- Matching runs on the distinct (drug, route, drug_type) triples, not on every row.
-- Columns: subject_id, hadm_id, starttime, stoptime (every matching order, its times as
-- charted; the readers map them to stays).
CREATE TABLE antibiotic AS
WITH rules AS (
    SELECT rule, pattern FROM registry_antibiotic
),
kinds AS (
    SELECT DISTINCT drug, route, drug_type FROM prescriptions WHERE drug IS NOT NULL
),
matched AS (
    SELECT k.drug, k.route, k.drug_type
    FROM kinds k
    WHERE EXISTS (SELECT 1 FROM rules r WHERE r.rule = 'drug' AND contains(lower(k.drug), r.pattern))
      AND NOT EXISTS (SELECT 1 FROM rules r WHERE r.rule = 'not_drug' AND contains(lower(k.drug), r.pattern))
      AND k.route IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM rules r WHERE r.rule = 'not_route' AND lower(trim(k.route)) = r.pattern)
      AND NOT EXISTS (SELECT 1 FROM rules r WHERE r.rule = 'not_route_has' AND contains(lower(k.route), r.pattern))
      AND NOT EXISTS (SELECT 1 FROM rules r WHERE r.rule = 'not_drug_type'
                                             AND lower(trim(coalesce(k.drug_type, ''))) = r.pattern)
)
SELECT p.subject_id, p.hadm_id, p.starttime, p.stoptime
FROM prescriptions p
SEMI JOIN matched m
  ON m.drug = p.drug AND m.route = p.route AND m.drug_type IS NOT DISTINCT FROM p.drug_type
WHERE p.starttime IS NOT NULL;

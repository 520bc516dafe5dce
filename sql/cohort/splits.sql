-- splits: train/val/test assignment BY PATIENT (subject_id), never by stay.
-- Patients of the cohort are ordered by md5(subject_id || ':' || getvariable('split_seed'))
-- (deterministic, independent of row order) and cut at the cumulative fractions
-- getvariable('split_train') and getvariable('split_train') + getvariable('split_val');
-- the rest is test. Every cohort patient appears exactly once.
CREATE TABLE splits AS
WITH patients_ AS (
    SELECT DISTINCT subject_id FROM cohort
),
ranked AS (
    SELECT
        subject_id,
        row_number() OVER (ORDER BY md5(CAST(subject_id AS VARCHAR) || ':' || getvariable('split_seed')),
                           subject_id) - 1 AS r,
        count(*) OVER () AS n
    FROM patients_
)
SELECT
    subject_id,
    CASE WHEN r < round(n * getvariable('split_train')) THEN 'train'
         WHEN r < round(n * (getvariable('split_train') + getvariable('split_val'))) THEN 'val'
         ELSE 'test' END AS split
FROM ranked;

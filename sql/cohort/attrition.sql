-- attrition: how many ICU stays each cohort rule removed (ordered as in cohort.sql).
-- Columns: step (0 = all stays), rule (text), stays_removed, stays_remaining.
CREATE TABLE attrition AS
WITH counts AS (
    SELECT
        count(*) AS n_all,
        count(*) FILTER (WHERE age >= getvariable('min_age')) AS n_adult,
        count(*) FILTER (WHERE age >= getvariable('min_age')
                           AND los_hours >= getvariable('min_los_hours')) AS n_los,
        count(*) FILTER (WHERE age >= getvariable('min_age')
                           AND los_hours >= getvariable('min_los_hours')
                           AND (NOT getvariable('first_stay_only') OR stay_seq = 1)) AS n_first
    FROM icustay_detail
),
steps AS (
    SELECT 0 AS step, 'all ICU stays (icu/icustays)' AS rule, n_all AS remaining FROM counts
    UNION ALL
    SELECT 1, 'age >= ' || getvariable('min_age') || ' years', n_adult FROM counts
    UNION ALL
    SELECT 2, 'length of stay >= ' || getvariable('min_los_hours') || ' hours', n_los FROM counts
    UNION ALL
    SELECT 3, CASE WHEN getvariable('first_stay_only') THEN 'first ICU stay per patient'
                   ELSE 'first ICU stay per patient (disabled: data.first_stay_only=false)' END,
           n_first FROM counts
    UNION ALL
    SELECT 4, 'at least one valid vital sign during the stay', (SELECT count(*) FROM cohort)
)
SELECT
    CAST(step AS INTEGER) AS step,
    rule,
    CAST(coalesce(lag(remaining) OVER (ORDER BY step) - remaining, 0) AS BIGINT) AS stays_removed,
    CAST(remaining AS BIGINT) AS stays_remaining
FROM steps
ORDER BY step;

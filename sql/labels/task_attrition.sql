-- task_attrition: per task, the cohort stays each exclusion rule of task_cohort removed.
-- Columns: task, step (0 = the cohort), rule, stays_removed, stays_remaining (stays
-- with at least one label row of the task once the rules up to this step are applied).
CREATE TABLE task_attrition AS
WITH counts AS (
    SELECT task, exclusion, count(*) AS n,
           CASE WHEN exclusion IS NULL THEN 99
                WHEN exclusion LIKE 'left the ICU%' OR exclusion LIKE 'end-stage%' THEN 1
                ELSE 2 END AS step
    FROM task_cohort
    GROUP BY task, exclusion
),
totals AS (
    SELECT task, sum(n) AS n_all FROM counts GROUP BY task
),
steps AS (
    SELECT t.task, 0 AS step, 'cohort stays' AS rule, 0 AS n_removed FROM totals t
    UNION ALL
    SELECT task, step, exclusion, n FROM counts WHERE exclusion IS NOT NULL
)
SELECT
    s.task,
    CAST(s.step AS INTEGER) AS step,
    s.rule,
    CAST(s.n_removed AS BIGINT) AS stays_removed,
    CAST(t.n_all - sum(s.n_removed) OVER (PARTITION BY s.task ORDER BY s.step
                                          ROWS UNBOUNDED PRECEDING) AS BIGINT) AS stays_remaining
FROM steps s
JOIN totals t ON t.task = s.task;

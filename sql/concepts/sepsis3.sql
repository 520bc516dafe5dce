-- sepsis3: first Sepsis-3 onset of each stay (hours since ICU intime).
--
-- Sepsis-3 = suspected infection + an acute SOFA rise >= 2 (Singer et al., JAMA 2016).
-- For every suspicion episode (suspected_infection) the SOFA window is the hours
-- [onset - 48 h, onset + 24 h] of the ICU stay (MIT-LCP mimic-code sepsis3.sql). The
-- rise at hour h is sofa(h) - baseline(h), with baseline(h) = the lowest 24 h SOFA
-- (sofa_hourly.sofa) in the window up to h; when the window starts before ICU intime the
-- unobserved pre-ICU part counts as SOFA 0 (Sepsis-3: baseline assumed 0 without known
-- prior organ dysfunction; mimic-code uses sofa >= 2 for the same reason).
-- sofa_hour = first hour in the window with a rise >= 2. The sepsis onset is the earlier
-- of the suspicion onset and sofa_hour (PhysioNet/CinC 2019 challenge, Reyna et al. Crit
-- Care Med 2020), clamped to >= 0 (the ICU stay); the earliest over episodes is kept.
-- Columns: stay_id, onset_hour, suspicion_hour, sofa_hour (INTEGER hours).
CREATE TABLE sepsis3 AS
WITH window_sofa AS (
    SELECT
        si.stay_id, si.onset_hour AS suspicion_hour, s.hour, s.sofa,
        -- lowest SOFA from the window start up to this hour; 0 if the window starts pre-ICU
        CASE
            WHEN si.onset_hour - 48 < 0 THEN 0
            ELSE min(s.sofa) OVER w
        END AS baseline
    FROM suspected_infection si
    JOIN sofa_hourly s
      ON s.stay_id = si.stay_id
     AND s.hour BETWEEN si.onset_hour - 48 AND si.onset_hour + 24
    WINDOW w AS (PARTITION BY si.stay_id, si.onset_hour ORDER BY s.hour
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
per_episode AS (
    SELECT stay_id, suspicion_hour, min(hour) AS sofa_hour
    FROM window_sofa
    WHERE sofa - baseline >= 2
    GROUP BY stay_id, suspicion_hour
),
ranked AS (
    SELECT
        stay_id, suspicion_hour, sofa_hour,
        greatest(least(suspicion_hour, sofa_hour), 0) AS onset_hour,
        row_number() OVER (PARTITION BY stay_id
                           ORDER BY greatest(least(suspicion_hour, sofa_hour), 0), suspicion_hour) AS rk
    FROM per_episode
)
SELECT
    stay_id,
    CAST(onset_hour AS INTEGER) AS onset_hour,
    CAST(suspicion_hour AS INTEGER) AS suspicion_hour,
    CAST(sofa_hour AS INTEGER) AS sofa_hour
FROM ranked
WHERE rk = 1
ORDER BY stay_id;

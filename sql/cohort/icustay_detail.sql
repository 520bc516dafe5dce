-- icustay_detail: one row per ICU stay (icu/icustays) with patient and admission facts.
-- Purpose: the base every cohort rule and label reads. Times are MIMIC-IV (shifted)
-- timestamps and never leave the database; exports use hours since intime.
-- Units: los_hours in hours (from intime/outtime, not the `los` column in days);
-- age in years = anchor_age + year(intime) - anchor_year (MIMIC-IV's anchor scheme).
-- stay_seq: 1 = the patient's first ICU stay (ordered by intime, then stay_id).
CREATE TABLE icustay_detail AS
SELECT
    ie.stay_id,
    ie.subject_id,
    ie.hadm_id,
    ie.intime,
    ie.outtime,
    date_diff('second', ie.intime, ie.outtime) / 3600.0 AS los_hours,
    CAST(pa.anchor_age + year(ie.intime) - pa.anchor_year AS INTEGER) AS age,
    pa.gender,
    ad.race,
    ad.admission_type,
    ad.admittime,
    ad.dischtime,
    ad.deathtime,
    pa.dod,
    CAST(ad.hospital_expire_flag AS INTEGER) AS hospital_expire_flag,
    CAST(row_number() OVER (PARTITION BY ie.subject_id ORDER BY ie.intime, ie.stay_id) AS INTEGER) AS stay_seq
FROM icustays ie
LEFT JOIN patients pa ON pa.subject_id = ie.subject_id
LEFT JOIN admissions ad ON ad.hadm_id = ie.hadm_id;

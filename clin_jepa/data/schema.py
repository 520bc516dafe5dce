"""MIMIC-IV v2.2 source tables: PhysioNet layout and column order.

One place that knows the source schema. The synthetic generator writes exactly these
columns (in this order); the extraction runner checks that each table it reads has the
``required`` columns and names the table, path and missing columns when one does not;
tests build tiny MIMIC-IV directories from these lists.

Column lists are those of PhysioNet's MIMIC-IV v2.2 csv.gz files (the demo's headers;
chartevents from the v2.2 documentation). v3.x files have the same required columns.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceTable:
    name: str  # view name in DuckDB, e.g. "chartevents"
    module: str  # "hosp" | "icu"
    columns: tuple[str, ...]  # full v2.2 column order (what the generator writes)
    required: tuple[str, ...]  # what clin-jepa's SQL reads

    @property
    def relpath(self) -> str:
        return f"{self.module}/{self.name}.csv.gz"


def _t(name: str, module: str, columns: str, required: str) -> SourceTable:
    return SourceTable(name, module, tuple(columns.split(",")), tuple(required.split(",")))


TABLES: dict[str, SourceTable] = {t.name: t for t in (
    _t("patients", "hosp", "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod",
       "subject_id,gender,anchor_age,anchor_year,dod"),
    _t("admissions", "hosp",
       "subject_id,hadm_id,admittime,dischtime,deathtime,admission_type,admit_provider_id,"
       "admission_location,discharge_location,insurance,language,marital_status,race,edregtime,"
       "edouttime,hospital_expire_flag",
       "subject_id,hadm_id,admittime,dischtime,deathtime,admission_type,race,hospital_expire_flag"),
    _t("labevents", "hosp",
       "labevent_id,subject_id,hadm_id,specimen_id,itemid,order_provider_id,charttime,storetime,"
       "value,valuenum,valueuom,ref_range_lower,ref_range_upper,flag,priority,comments",
       "subject_id,hadm_id,specimen_id,itemid,charttime,value,valuenum"),
    _t("d_labitems", "hosp", "itemid,label,fluid,category", "itemid,label"),
    _t("diagnoses_icd", "hosp", "subject_id,hadm_id,seq_num,icd_code,icd_version",
       "subject_id,hadm_id,icd_code,icd_version"),
    _t("prescriptions", "hosp",
       "subject_id,hadm_id,pharmacy_id,poe_id,poe_seq,order_provider_id,starttime,stoptime,drug_type,"
       "drug,formulary_drug_cd,gsn,ndc,prod_strength,form_rx,dose_val_rx,dose_unit_rx,form_val_disp,"
       "form_unit_disp,doses_per_24_hrs,route",
       "subject_id,hadm_id,starttime,stoptime,drug_type,drug,route"),
    _t("microbiologyevents", "hosp",
       "microevent_id,subject_id,hadm_id,micro_specimen_id,order_provider_id,chartdate,charttime,"
       "spec_itemid,spec_type_desc,test_seq,storedate,storetime,test_itemid,test_name,org_itemid,"
       "org_name,isolate_num,quantity,ab_itemid,ab_name,dilution_text,dilution_comparison,"
       "dilution_value,interpretation,comments",
       "subject_id,hadm_id,chartdate,charttime,spec_type_desc"),
    _t("icustays", "icu", "subject_id,hadm_id,stay_id,first_careunit,last_careunit,intime,outtime,los",
       "subject_id,hadm_id,stay_id,intime,outtime,los"),
    _t("d_items", "icu",
       "itemid,label,abbreviation,linksto,category,unitname,param_type,lownormalvalue,highnormalvalue",
       "itemid,label"),
    _t("chartevents", "icu",
       "subject_id,hadm_id,stay_id,caregiver_id,charttime,storetime,itemid,value,valuenum,valueuom,warning",
       "stay_id,charttime,itemid,value,valuenum"),
    _t("inputevents", "icu",
       "subject_id,hadm_id,stay_id,caregiver_id,starttime,endtime,storetime,itemid,amount,amountuom,"
       "rate,rateuom,orderid,linkorderid,ordercategoryname,secondaryordercategoryname,"
       "ordercomponenttypedescription,ordercategorydescription,patientweight,totalamount,"
       "totalamountuom,isopenbag,continueinnextdept,statusdescription,originalamount,originalrate",
       "stay_id,starttime,endtime,itemid,amount,amountuom,rate,rateuom,ordercomponenttypedescription,"
       "ordercategorydescription,patientweight"),
    _t("outputevents", "icu", "subject_id,hadm_id,stay_id,caregiver_id,charttime,storetime,itemid,value,valueuom",
       "stay_id,charttime,itemid,value"),
    _t("procedureevents", "icu",
       "subject_id,hadm_id,stay_id,caregiver_id,starttime,endtime,storetime,itemid,value,valueuom,"
       "location,locationcategory,orderid,linkorderid,ordercategoryname,ordercategorydescription,"
       "patientweight,isopenbag,continueinnextdept,statusdescription,ORIGINALAMOUNT,ORIGINALRATE",
       "stay_id,starttime,endtime,itemid"),
)}

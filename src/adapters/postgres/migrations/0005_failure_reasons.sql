-- Why an attempt failed, or why a delivery waits, as a code (`dns`, `connection_refused`, ... `other`): set on the
-- result entry of a failed attempt and on a deferral; NULL on the others and on every entry written before. No
-- CHECK on the texts: codes are added without a schema change, and a code the build does not know reads as
-- `other`. Number 4 is another change's (it touches other tables only); this one does not depend on it.
ALTER TABLE __SCHEMA__.log_entries ADD COLUMN reason text;

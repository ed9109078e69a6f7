-- The quota grant a delivery holds: the tenant's day it was counted on and the attempt it is for. A pass dropped
-- after its grant leaves it here, and the delivery's next claim sends that attempt without counting it again.
ALTER TABLE __SCHEMA__.deliveries ADD COLUMN quota_day date, ADD COLUMN quota_attempt bigint;

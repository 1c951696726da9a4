-- One index fewer on every attempt written. `delivery_attempts_endpoint_ok_idx` held every
-- 2xx attempt (nearly all of them) only so that an endpoint's health could find its last
-- success without walking its failures. The health query walks the failures since the last
-- success anyway, to count the streak (store/health.rs), so the last success is found on
-- `delivery_attempts_endpoint_idx` by the same walk, one entry further; for a healthy endpoint
-- it is the newest entry. The completion inserted into this index for every delivered
-- attempt: about 3 µs and one WAL record each (docs/performance.md).
DROP INDEX delivery_attempts_endpoint_ok_idx;

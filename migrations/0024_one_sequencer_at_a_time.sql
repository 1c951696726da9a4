-- One sequencer at a time per database: two workers numbering at once could number a
-- proposal's later notification before its earlier one.
--
-- Concurrent sequencers skip each other's arrivals (FOR UPDATE SKIP LOCKED) and lock the
-- counters they bump in (endpoint, key) order, so they never deadlock. But that order is the
-- keys' order, not the arrivals': when sequencer A holds a proposal's first arrival and is
-- still waiting for the counter of another key, sequencer B, holding the same proposal's
-- second arrival, can bump its counter first. The second notification then gets number 1
-- and is sent first; the first waits behind it (number 2). Any deployment with two worker
-- processes could do this to two status changes of one proposal made a moment apart.
--
-- Numbering is cheap and ordered by nature, so it needs no parallelism: the sequencer now
-- takes a transaction-level advisory lock, and a worker that finds it taken numbers nothing
-- this round (it returns 0 and goes on to claim; whoever holds the lock numbers the
-- arrivals and claims them in the same transaction). The lock is released when the
-- numbering's transaction ends, with its counters' row locks, so the next sequencer sees
-- every number the last one gave. Transaction-level, so it works behind a transaction
-- pooler too.
--
-- The numbering itself is 0023's function as it was, under a new name; the old name is
-- what every caller (the worker, tests, the benchmark) keeps calling.
ALTER FUNCTION callbackd_sequence_arrivals(integer) RENAME TO callbackd_number_arrivals;

CREATE FUNCTION callbackd_sequence_arrivals(max_rows integer) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    -- 0x63626b64 is 'cbkd': the key of the numbering lock (one per database).
    IF NOT pg_try_advisory_xact_lock(1667394404) THEN
        RETURN 0;
    END IF;
    RETURN callbackd_number_arrivals(max_rows);
END;
$$;

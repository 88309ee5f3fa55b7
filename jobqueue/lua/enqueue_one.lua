-- Enqueue one job without an idempotency key: `Queue.enqueue`'s path (fewer keys and calls
-- than enqueue.lua, the same record, lists, counters and event).
--! KEYS: ready_high ready_normal ready_low delayed counters events job_spec job_run_at
-- ARGV: id, delay_ms, spec JSON [priority,max_retries,type,payload] without its '[' (the
--       stored record is '[' created_ms ',' ARGV[3]: one copy of the payload in Lua, not two)
-- Returns 1 when created, 0 when a job with that id already exists (nothing changes).
local id, d, s = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local now = now_ms()
if redis.call('HSETNX', k_job_spec, id, '[' .. now .. ',' .. s) == 0 then
  return 0
end
if d > 0 then
  redis.call('ZADD', k_delayed, now + d, id)
  redis.call('HSET', k_job_run_at, id, now + d)
else
  local READY = {k_ready_high, k_ready_normal, k_ready_low}
  redis.call('RPUSH', READY[string.byte(s, 1) - 47], id)  -- '0'..'2' -> 1..3
end
redis.call('HINCRBY', k_counters, 'enqueued', 1)
redis.call('PUBLISH', k_events, '{"event":"enqueued","n":1}')
return 1

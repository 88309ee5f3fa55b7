-- Cancel a job that is waiting (queued, delayed or awaiting a retry) or, when ARGV[3] is '1',
-- running: its lease is dropped (so its holder's complete/fail/renew/progress are stale and
-- change nothing) and its id is published on the control channel, where the holding worker
-- hears it and stops the task. Finished jobs are left alone.
--! KEYS: ready_high ready_normal ready_low lease delayed expiry counters events control
--! KEYS: job_spec job_status
-- ARGV: id, result_ttl_ms, running allowed (1/0).
-- Returns 1 (a waiting job was cancelled), 2 (a running one was) or 0 (nothing changed).
local id = ARGV[1]
local st = redis.call('HGET', k_job_status, id)
-- no status: queued or processing (in the lease set); failed: awaiting retry
if st and st ~= 'failed' then return 0 end
local outcome = 1
local removed = redis.call('ZREM', k_delayed, id)
if removed == 0 and not st and redis.call('ZSCORE', k_lease, id) then
  if ARGV[3] ~= '1' then return 0 end
  removed = redis.call('ZREM', k_lease, id)
  outcome = 2
elseif removed == 0 then
  local READY = {k_ready_high, k_ready_normal, k_ready_low}
  local _c, p = spec_meta(redis.call('HGET', k_job_spec, id) or '')
  removed = redis.call('LREM', READY[(p or 1) + 1], 1, id)
end
if removed == 0 then return 0 end
local now = now_ms()
redis.call('HSET', k_job_status, id, 'cancelled|' .. now)
redis.call('ZADD', k_expiry, now + tonumber(ARGV[2]), id)
redis.call('HINCRBY', k_counters, 'cancelled', 1)
if outcome == 2 then
  redis.call('PUBLISH', k_control, '{"cancel":"' .. id .. '"}')
  redis.call('PUBLISH', k_events, '{"event":"cancelled","id":"' .. id .. '","running":true}')
else
  redis.call('PUBLISH', k_events, '{"event":"cancelled","id":"' .. id .. '"}')
end
return outcome

-- Cancel a job that is waiting (queued, delayed or awaiting a retry); running or finished
-- jobs are left alone.
--! KEYS: ready_high ready_normal ready_low delayed expiry counters events job_spec
--! KEYS: job_status
-- ARGV: id, result_ttl_ms. Returns 1/0.
local id = ARGV[1]
local st = redis.call('HGET', k_job_status, id)
-- no status: queued (or processing: then it is in no list below); failed: awaiting retry
if st and st ~= 'failed' then return 0 end
local removed = redis.call('ZREM', k_delayed, id)
if removed == 0 then
  local READY = {k_ready_high, k_ready_normal, k_ready_low}
  local _c, p = spec_meta(redis.call('HGET', k_job_spec, id) or '')
  removed = redis.call('LREM', READY[(p or 1) + 1], 1, id)
end
if removed == 0 then return 0 end
local now = now_ms()
redis.call('HSET', k_job_status, id, 'cancelled|' .. now)
redis.call('ZADD', k_expiry, now + tonumber(ARGV[2]), id)
redis.call('HINCRBY', k_counters, 'cancelled', 1)
redis.call('PUBLISH', k_events, '{"event":"cancelled","id":"' .. id .. '"}')
return 1

-- Record a failed attempt: retry after backoff with full jitter, or dead-letter the job.
--! KEYS: lease delayed dead counters events job_spec job_run job_status job_error
--! KEYS: job_run_at job_progress
-- ARGV: id, token, error, retry (1/0), random seed, backoff base ms, backoff cap ms
-- Returns {outcome, delay_ms}; outcome is 'retrying', 'dead' or 'stale'.
local id, token = ARGV[1], ARGV[2]
math.randomseed(tonumber(ARGV[5]))
if run_token(redis.call('HGET', k_job_run, id)) ~= token or not redis.call('ZSCORE', k_lease, id) then
  return {'stale', 0}
end
local now = now_ms()
redis.call('ZREM', k_lease, id)
local k = {spec = k_job_spec, run = k_job_run, status = k_job_status, error = k_job_error,
           run_at = k_job_run_at, progress = k_job_progress, delayed = k_delayed,
           dead = k_dead, counters = k_counters}
local r = settle_failures(k, {id}, ARGV[3], ARGV[4] == '1', now, tonumber(ARGV[6]),
                          tonumber(ARGV[7]))[1]
local err = cjson.encode(ARGV[3])
local msg
if r[1] == 'dead' then
  msg = '{"event":"dead","id":"' .. id .. '","error":' .. err .. '}'
else
  msg = '{"event":"failed","id":"' .. id .. '","retry_in_ms":' .. r[2] .. ',"error":' .. err .. '}'
end
redis.call('PUBLISH', k_events, msg)
return r

-- Record a running job's progress (0-100) and publish it.
--! KEYS: lease events job_run job_progress
-- ARGV: id, token, progress. Returns 1/0.
local id = ARGV[1]
if run_token(redis.call('HGET', k_job_run, id)) ~= ARGV[2] or not redis.call('ZSCORE', k_lease, id) then
  return 0
end
redis.call('HSET', k_job_progress, id, ARGV[3])
redis.call('PUBLISH', k_events, '{"event":"progress","id":"' .. id .. '","progress":' .. ARGV[3] .. '}')
return 1

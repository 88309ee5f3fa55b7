-- Move dead jobs back to the end of their ready list with a fresh attempt budget; the
-- last error is kept on the record, the fencing token keeps counting.
--! KEYS: ready_high ready_normal ready_low dead counters events job_spec job_run job_status
--! KEYS: job_run_at job_progress
-- ARGV: id ('' = the oldest `limit` dead jobs), limit. Returns how many were moved.
local ids
if ARGV[1] ~= '' then
  if not redis.call('ZSCORE', k_dead, ARGV[1]) then return 0 end
  ids = {ARGV[1]}
else
  ids = redis.call('ZRANGE', k_dead, 0, tonumber(ARGV[2]) - 1)
end
if #ids == 0 then return 0 end
local READY = {k_ready_high, k_ready_normal, k_ready_low}
local specs = redis.call('HMGET', k_job_spec, unpack(ids))
local runs = redis.call('HMGET', k_job_run, unpack(ids))
local lists = {{}, {}, {}}
local run = {}
for i, id in ipairs(ids) do
  local p = 1
  if specs[i] then
    local _c, pri = spec_meta(specs[i])
    p = pri or 1
  end
  local l = lists[p + 1]
  l[#l + 1] = id
  local t = run_parse(runs[i])
  run[#run + 1] = id
  run[#run + 1] = t .. '|0||'
end
redis.call('ZREM', k_dead, unpack(ids))
redis.call('HDEL', k_job_status, unpack(ids))  -- no status = queued
redis.call('HDEL', k_job_run_at, unpack(ids))
redis.call('HDEL', k_job_progress, unpack(ids))
bulk('HSET', k_job_run, run)
for p = 1, 3 do
  if #lists[p] > 0 then bulk('RPUSH', READY[p], lists[p]) end
end
redis.call('HINCRBY', k_counters, 'retried', #ids)
redis.call('PUBLISH', k_events, '{"event":"retried","n":' .. #ids .. '}')
return #ids

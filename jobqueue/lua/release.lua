-- Hand leased jobs back to the FRONT of their ready list; the attempt does not count.
--! KEYS: ready_high ready_normal ready_low lease counters events job_spec job_run
--! KEYS: job_progress
-- ARGV: ids (space-separated), tokens (space-separated). Returns a flags string.
local ids = words(ARGV[1])
local toks = words(ARGV[2])
local n = #ids
if n == 0 then return '' end
local runs = redis.call('HMGET', k_job_run, unpack(ids))
local leased = redis.call('ZMSCORE', k_lease, unpack(ids))
local READY = {k_ready_high, k_ready_normal, k_ready_low}
local lists = {{}, {}, {}}
local flags, ok, run = {}, {}, {}
local seen = {}
for i = 1, n do
  local id = ids[i]
  if leased[i] and not seen[id] and run_token(runs[i]) == toks[i] then
    seen[id] = true
    flags[i] = '1'
    ok[#ok + 1] = id
  else
    flags[i] = '0'
  end
end
if #ok > 0 then
  local okruns = redis.call('HMGET', k_job_run, unpack(ok))
  local specs = redis.call('HMGET', k_job_spec, unpack(ok))
  for i, id in ipairs(ok) do
    local t, a, s, w = run_parse(okruns[i])
    a = a - 1
    if a < 0 then a = 0 end
    run[#run + 1] = id
    run[#run + 1] = t .. '|' .. a .. '|' .. s .. '|' .. w
    local p = 1
    if specs[i] then
      local _c, pri = spec_meta(specs[i])
      p = pri or 1
    end
    local l = lists[p + 1]
    l[#l + 1] = id
  end
  redis.call('ZREM', k_lease, unpack(ok))
  redis.call('HDEL', k_job_progress, unpack(ok))
  bulk('HSET', k_job_run, run)
  for p = 1, 3 do
    local l = lists[p]
    if #l > 0 then
      -- LPUSH reverses its arguments, so push in reverse to keep the batch's order at the front.
      local rev = {}
      for i = #l, 1, -1 do rev[#rev + 1] = l[i] end
      bulk('LPUSH', READY[p], rev)
    end
  end
  redis.call('HINCRBY', k_counters, 'released', #ok)
  redis.call('PUBLISH', k_events, '{"event":"released","n":' .. #ok .. ',"ids":' .. ids_json(ok) .. '}')
end
return table.concat(flags)

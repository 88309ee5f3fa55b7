-- Acknowledge finished jobs; a stale token (lease lost or job already settled) changes nothing.
--! KEYS: lease expiry counters events @columns
-- ARGV: result_ttl_ms, ids (space-separated), tokens (space-separated), then either
--       nothing (no results) or one result JSON per job ('' = none).
-- Returns a flags string: '1' acknowledged, '0' stale, per job.
local ttl = tonumber(ARGV[1])
local ids = words(ARGV[2])
local toks = words(ARGV[3])
local has_results = #ARGV > 3
local n = #ids
if n == 0 then return '' end
local now = now_ms()
local runs = redis.call('HMGET', k_job_run, unpack(ids))
local leased = redis.call('ZMSCORE', k_lease, unpack(ids))

local flags, ok, st, res = {}, {}, {}, {}
local done = 'completed|' .. now
local seen = {}
local m = 0
for i = 1, n do
  local id = ids[i]
  if leased[i] and not seen[id] and run_token(runs[i]) == toks[i] then
    seen[id] = true
    flags[i] = '1'
    m = m + 1
    ok[m] = id
    st[2 * m - 1] = id; st[2 * m] = done
    if has_results then
      local r = ARGV[3 + i]
      if r ~= '' then
        res[#res + 1] = id
        res[#res + 1] = r
      end
    end
  else
    flags[i] = '0'
  end
end
if m > 0 then
  redis.call('ZREM', k_lease, unpack(ok))
  bulk('HSET', k_job_status, st)
  if #res > 0 then bulk('HSET', k_job_result, res) end
  -- one expiry member per batch: the space-separated ids
  redis.call('ZADD', k_expiry, now + ttl, table.concat(ok, ' '))
  redis.call('HINCRBY', k_counters, 'completed', m)
  redis.call('PUBLISH', k_events, '{"event":"completed","ids":' .. ids_json(ok) .. '}')
  -- Forget finished records whose result TTL ran out, twice as many as just finished: the
  -- reaping keeps pace with the completions by construction.
  reap_finished(JOB_COLUMNS, k_expiry, now, 2 * m)
end
return table.concat(flags)

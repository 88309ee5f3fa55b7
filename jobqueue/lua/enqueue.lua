-- Enqueue a batch of jobs atomically: idempotency check, record, ready list or delayed set.
-- (Finished records are reaped by complete and by the claims' maintenance, not here.)
--! KEYS: ready_high ready_normal ready_low delayed counters events idem idem_exp expiry
--! KEYS: @columns
-- ARGV: idem_ttl_ms, maintenance_limit, ids (space-separated), delays_ms (space-separated,
--       '' = all 0), number of idempotency keys K, K pairs (job index, key), then one spec
--       JSON [priority,max_retries,type,payload] per job without its '[' (the stored record is
--       '[' created_ms ',' spec: every Lua string of a payload costs Redis a hash of it).
-- Returns {flags, existing ids...}: flags has '1' (created) or '0' (not created) per job;
-- for each '0', in order, the id of the job that already existed.
local idem_ttl = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local ids = words(ARGV[3])
local n = #ids
if n == 0 then return {''} end
local delays = nil
if ARGV[4] ~= '' then delays = words(ARGV[4]) end
local nidem = tonumber(ARGV[5])
local ikeys = {}
for i = 1, nidem do
  ikeys[tonumber(ARGV[5 + 2 * i - 1])] = ARGV[5 + 2 * i]
end
local S = 5 + 2 * nidem  -- spec of job i is ARGV[S + i]
local now = now_ms()

if nidem > 0 then
  local stale = redis.call('ZRANGEBYSCORE', k_idem_exp, '-inf', now, 'LIMIT', 0, limit)
  if #stale > 0 then
    redis.call('HDEL', k_idem, unpack(stale))
    redis.call('ZREM', k_idem_exp, unpack(stale))
  end
end

-- a job exists iff it has a spec (new ids return nil: cheap); one job: HSETNX below
local existing = {}
if n > 1 then existing = redis.call('HMGET', k_job_spec, unpack(ids)) end
local READY = {k_ready_high, k_ready_normal, k_ready_low}
local ready = {{}, {}, {}}
local spec = {}
local delayed, run_at, idem, idem_exp = {}, {}, {}, {}
local seen, seen_idem = {}, {}
local flags, out = {}, {''}
local made = 0
local prefix = '[' .. now .. ','
for i = 1, n do
  local id = ids[i]
  local ikey = ikeys[i]
  local hit = false
  if ikey then
    hit = seen_idem[ikey] or false
    if not hit then
      local jid = redis.call('HGET', k_idem, ikey)
      if jid then
        local exp = redis.call('ZSCORE', k_idem_exp, ikey)
        if exp and tonumber(exp) > now then hit = jid end
      end
    end
  end
  if not hit and (existing[i] or seen[id]) then hit = id end
  local s = ARGV[S + i]
  if not hit and n == 1 and redis.call('HSETNX', k_job_spec, id, prefix .. s) == 0 then
    hit = id
  end
  if hit then
    flags[i] = '0'
    out[#out + 1] = hit
  else
    flags[i] = '1'
    made = made + 1
    seen[id] = true
    local d = 0
    if delays then d = tonumber(delays[i]) end
    if ikey then
      seen_idem[ikey] = id
      idem[#idem + 1] = ikey
      idem[#idem + 1] = id
      idem_exp[#idem_exp + 1] = now + d + idem_ttl
      idem_exp[#idem_exp + 1] = ikey
    end
    if n > 1 then
      spec[#spec + 1] = id
      spec[#spec + 1] = prefix .. s
    end
    if d > 0 then
      delayed[#delayed + 1] = now + d
      delayed[#delayed + 1] = id
      run_at[#run_at + 1] = id
      run_at[#run_at + 1] = now + d
    else
      local list = ready[string.byte(s, 1) - 47]  -- '0'..'2' -> 1..3
      list[#list + 1] = id
    end
  end
end

if made > 0 then
  if n > 1 then bulk('HSET', k_job_spec, spec) end
  if #delayed > 0 then
    bulk('ZADD', k_delayed, delayed)
    bulk('HSET', k_job_run_at, run_at)
  end
  for p = 1, 3 do
    if #ready[p] > 0 then bulk('RPUSH', READY[p], ready[p]) end
  end
  if #idem > 0 then
    bulk('HSET', k_idem, idem)
    bulk('ZADD', k_idem_exp, idem_exp)
  end
  redis.call('HINCRBY', k_counters, 'enqueued', made)
  redis.call('PUBLISH', k_events, '{"event":"enqueued","n":' .. made .. '}')
end
out[1] = table.concat(flags)
return out

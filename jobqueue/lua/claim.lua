-- Claim up to `count` jobs for one worker. Queue maintenance (recovering expired leases: a
-- failed attempt each, retry with backoff or dead; promoting due delayed jobs; reaping expired
-- finished records) runs at most once per `maintenance_ms` per queue, whoever claims: the
-- `maintenance` key is a gate SET with NX and that expiry. Due delayed jobs are also promoted
-- whenever the ready lists alone cannot fill the claim, so an idle queue runs them on time.
--! KEYS: ready_high ready_normal ready_low lease delayed dead expiry counters events
--! KEYS: maintenance @columns
-- ARGV: count, lease_ms, worker id, random seed, backoff base ms, backoff cap ms,
--       maintenance limit, lease-expired error text, maintenance interval ms
-- A leased job has no status field (processing = in the lease set). Publishes nothing on
-- success (a claim leaves the depth ready + in flight unchanged); recovery publishes
-- `lease_expired`.
-- Returns '' when nothing was claimed, else {meta, spec...}: meta is one JSON array with one
-- [id, token, attempt] per job, followed by each job's stored spec, unchanged, in the same
-- order. (The specs are not cut or joined in Lua: every Lua string costs Redis a hash of all
-- its bytes, which made a claim of 100 KB payloads cost several times the payload bytes.)
local count = tonumber(ARGV[1])
local lease_ms = tonumber(ARGV[2])
local worker = ARGV[3]
local base, cap = tonumber(ARGV[5]), tonumber(ARGV[6])
local limit = tonumber(ARGV[7])
local now = now_ms()
local READY = {k_ready_high, k_ready_normal, k_ready_low}

-- Promote due delayed jobs to the back of their ready list, in due order.
local function promote()
  local due = redis.call('ZRANGEBYSCORE', k_delayed, '-inf', now, 'LIMIT', 0, limit)
  if #due == 0 then return 0 end
  local specs = redis.call('HMGET', k_job_spec, unpack(due))
  local lists = {{}, {}, {}}
  for i, id in ipairs(due) do
    local p = 1
    if specs[i] then
      local _c, pri = spec_meta(specs[i])
      p = pri or 1
    end
    local l = lists[p + 1]
    l[#l + 1] = id
  end
  redis.call('ZREM', k_delayed, unpack(due))
  redis.call('HDEL', k_job_status, unpack(due))  -- no status = queued
  for p = 1, 3 do
    if #lists[p] > 0 then redis.call('RPUSH', READY[p], unpack(lists[p])) end
  end
  return #due
end

-- Pop up to `count` ids in all, highest priority first, into one bucket per priority (a second
-- pop after a promotion keeps the order: a promoted high job goes before low ones).
local buckets = {{}, {}, {}}
local popped = 0
local function pop()
  for p = 1, 3 do
    local want = count - popped
    if want <= 0 then return end
    local got = redis.call('LPOP', READY[p], want)
    if got then
      local b = buckets[p]
      for i = 1, #got do b[#b + 1] = got[i] end
      popped = popped + #got
    end
  end
end

local promoted = false
if redis.call('SET', k_maintenance, now, 'PX', ARGV[9], 'NX') then
  -- 1. Recover jobs whose lease ran out: their worker died or stalled.
  local expired = redis.call('ZRANGEBYSCORE', k_lease, '-inf', now, 'LIMIT', 0, limit)
  if #expired > 0 then
    math.randomseed(tonumber(ARGV[4]))
    redis.call('ZREM', k_lease, unpack(expired))
    local k = {spec = k_job_spec, run = k_job_run, status = k_job_status, error = k_job_error,
               run_at = k_job_run_at, progress = k_job_progress, delayed = k_delayed,
               dead = k_dead, counters = k_counters}
    settle_failures(k, expired, ARGV[8], true, now, base, cap)
    redis.call('HINCRBY', k_counters, 'recovered', #expired)
    redis.call('PUBLISH', k_events, '{"event":"lease_expired","ids":' .. ids_json(expired) .. '}')
  end
  -- 2. Promote due delayed jobs; 3. forget finished jobs whose result TTL ran out.
  promote()
  promoted = true
  reap_finished(JOB_COLUMNS, k_expiry, now, limit)
end

-- 4. Pop, highest priority first; short of `count`, promote what fell due and pop again.
pop()
if popped < count and not promoted and promote() > 0 then pop() end
if popped == 0 then return '' end
local ids = {}
for p = 1, 3 do
  for _, id in ipairs(buckets[p]) do ids[#ids + 1] = id end
end

local specs = redis.call('HMGET', k_job_spec, unpack(ids))
local runs = redis.call('HMGET', k_job_run, unpack(ids))
local deadline = now + lease_ms
local tail = '|' .. now .. '|' .. worker
local meta, out, run, lease = {}, {''}, {}, {}
local j, o = 0, 0
for i = 1, #ids do
  local id = ids[i]
  local spec = specs[i]
  if spec then
    local t, a = run_parse(runs[i])
    t = t + 1
    a = a + 1
    j = j + 2
    run[j - 1] = id; run[j] = t .. '|' .. a .. tail
    lease[j - 1] = deadline; lease[j] = id
    o = o + 1
    meta[o] = '["' .. id .. '",' .. t .. ',' .. a .. ']'
    out[o + 1] = spec
  end
end
if j == 0 then return '' end
bulk('HSET', k_job_run, run)
bulk('ZADD', k_lease, lease)
out[1] = '[' .. table.concat(meta, ',') .. ']'
return out

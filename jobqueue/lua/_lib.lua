-- Helpers prepended to every script (after the generated `local k_<name> = KEYS[i]` lines).
-- Functions take the keys they touch as parameters: they never build key names.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- redis.call(cmd, key, <t...>) in slices: Lua's unpack() is limited to ~8000 values.
-- Slices have an even length, so field/value and score/member pairs stay together.
local function bulk(cmd, key, t)
  local n = #t
  local i = 1
  while i <= n do
    local j = i + 3999
    if j > n then j = n end
    redis.call(cmd, key, unpack(t, i, j))
    i = j + 1
  end
end

-- Space-separated words (job ids, tokens: their alphabet has no spaces) as a list.
local function words(s)
  local t = {}
  local n = 0
  for w in string.gmatch(s, '%S+') do
    n = n + 1
    t[n] = w
  end
  return t
end

-- spec = [created_ms,priority,max_retries,type,payload]: read the fixed prefix only.
local function spec_meta(spec)
  local c, p, m = string.match(spec, '^%[(%d+),(%d),(%d+),')
  return tonumber(c), tonumber(p), tonumber(m)
end

-- run = "token|attempts|started_ms|worker" (false/nil before the first claim).
local function run_parse(v)
  if not v then return 0, 0, '', '' end
  local t, a, s, w = string.match(v, '^(%d+)|(%d+)|([^|]*)|(.*)$')
  return tonumber(t) or 0, tonumber(a) or 0, s or '', w or ''
end

local function run_token(v)
  if not v then return nil end
  return string.match(v, '^(%d+)|')
end

-- Full-jitter exponential backoff in ms after failed attempt `attempt` (1-based); the
-- caller seeds math.random from ARGV (Lua's own randomness is deterministic).
local function backoff_ms(attempt, base, cap)
  if attempt < 1 then attempt = 1 end
  local e = attempt - 1
  if e > 1023 then e = 1023 end
  local ceiling = base * 2 ^ e
  if ceiling > cap then ceiling = cap end
  return math.floor(math.random() * ceiling)
end

-- JSON array of job ids (ids are validated to a quote-free alphabet in Python).
local function ids_json(ids)
  if #ids == 0 then return '[]' end
  return '["' .. table.concat(ids, '","') .. '"]'
end

-- Append the records of `ids` to `out` as read.lua returns them: the ids, their lease
-- deadlines (nil = not leased), then one value list per column.
local function job_rows(out, lease, columns, ids)
  out[#out + 1] = ids
  if #ids == 0 then return out end
  out[#out + 1] = redis.call('ZMSCORE', lease, unpack(ids))
  for _, col in ipairs(columns) do
    out[#out + 1] = redis.call('HMGET', col, unpack(ids))
  end
  return out
end

-- Delete every column of the given jobs.
local function delete_jobs(columns, ids)
  if #ids == 0 then return end
  for _, col in ipairs(columns) do
    redis.call('HDEL', col, unpack(ids))
  end
end

-- Delete records whose result TTL ran out. Members of the expiry set are space-separated
-- id lists (one per completed batch); stops after about `limit` jobs. Returns how many.
local function reap_finished(columns, expiry, now, limit)
  local members = redis.call('ZRANGEBYSCORE', expiry, '-inf', now, 'LIMIT', 0, limit)
  local done = 0
  for _, m in ipairs(members) do
    if done >= limit then break end
    local ids = words(m)
    delete_jobs(columns, ids)
    redis.call('ZREM', expiry, m)
    done = done + #ids
  end
  return done
end

-- Settle failed attempts of jobs that already left the lease set: each one is scheduled for
-- a retry (delayed ZSET, status failed, backoff with full jitter) while attempts remain and
-- `allow_retry` holds, else moved to the dead set. `k` holds the keys: spec, run, status,
-- error, run_at, progress, delayed, dead, counters.
-- Returns a list of {outcome, delay_ms} in input order.
local function settle_failures(k, ids, err, allow_retry, now, base, cap)
  local n = #ids
  local out = {}
  if n == 0 then return out end
  local runs = redis.call('HMGET', k.run, unpack(ids))
  local specs = redis.call('HMGET', k.spec, unpack(ids))
  local delayed, status, run_at, errors, dead = {}, {}, {}, {}, {}
  local ndead = 0
  for i = 1, n do
    local id = ids[i]
    local _, a = run_parse(runs[i])
    local mr = 0
    if specs[i] then
      local _c, _p, m = spec_meta(specs[i])
      mr = m or 0
    end
    errors[#errors + 1] = id
    errors[#errors + 1] = err
    if allow_retry and a < mr + 1 then
      local due = now + backoff_ms(a, base, cap)
      delayed[#delayed + 1] = due
      delayed[#delayed + 1] = id
      status[#status + 1] = id
      status[#status + 1] = 'failed'
      run_at[#run_at + 1] = id
      run_at[#run_at + 1] = due
      out[i] = {'retrying', due - now}
    else
      ndead = ndead + 1
      dead[#dead + 1] = now
      dead[#dead + 1] = id
      status[#status + 1] = id
      status[#status + 1] = 'dead|' .. now
      out[i] = {'dead', 0}
    end
  end
  redis.call('HDEL', k.progress, unpack(ids))
  bulk('HSET', k.error, errors)
  bulk('HSET', k.status, status)
  if #delayed > 0 then
    bulk('ZADD', k.delayed, delayed)
    bulk('HSET', k.run_at, run_at)
  end
  if ndead > 0 then
    bulk('ZADD', k.dead, dead)
    redis.call('HINCRBY', k.counters, 'dead', ndead)
  end
  redis.call('HINCRBY', k.counters, 'failed', n)
  return out
end

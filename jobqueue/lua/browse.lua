-- List the jobs of one state a page at a time, with bounded work whatever the queue length:
-- at most `budget` job ids are examined per call (a filtered page can come back short, or
-- empty, with a cursor to go on from), and every seek is O(log n).
--! KEYS: ready_high ready_normal ready_low lease delayed dead expiry @columns
-- ARGV: state, limit, budget, type ('' = any, else the type JSON-encoded as in the spec),
--       cursor ('' = from the start)
-- States and where they are read from (browse.py documents the order each one is listed in):
--   queued              ready lists, high then normal then low, FIFO; cursor "prio|offset"
--   running             lease ZSET, ascending deadline
--   delayed / failed    delayed ZSET, ascending due time; failed = status 'failed' (a retry
--                       waits out its backoff), delayed = the others (enqueued with a delay)
--   dead                dead ZSET, newest death first
--   completed/cancelled expiry ZSET (members are batches "id id ..."), newest first
-- A ZSET cursor is "score|first id of the member|ids of that member already examined".
-- Returns {next cursor ('' = end), ids, lease deadlines, column values...} (read.lua's shape).
local state = ARGV[1]
local limit = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local want_type = ARGV[4]
local cursor = ARGV[5]
local CHUNK = 100

local found = {}
local examined = 0

-- Byte-wise string order: Lua's `<` follows the server's LC_COLLATE, which ZSETs do not.
local function before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function first_word(s)
  return string.match(s, '^(%S+)') or ''
end

-- Does the job pass the state's status test and the type filter? Reads only what it needs.
local status_test = nil
if state == 'delayed' then
  status_test = function(st) return st ~= 'failed' end
elseif state == 'failed' then
  status_test = function(st) return st == 'failed' end
elseif state == 'completed' then
  status_test = function(st) return st and string.sub(st, 1, 10) == 'completed|' end
elseif state == 'cancelled' then
  status_test = function(st) return st and string.sub(st, 1, 10) == 'cancelled|' end
end

local function type_matches(spec)
  if not spec then return false end
  local _, e = string.find(spec, '^%[%d+,%d,%d+,')
  if not e then return false end
  return string.sub(spec, e + 1, e + #want_type + 1) == want_type .. ','
end

-- Examine ids[from..to] in order, in slices no larger than the page still needs (at least
-- 32, so a rare match is looked for in reasonable steps); add the accepted ones to `found`
-- until `limit` is reached or the budget is spent. Returns the index of the last id examined.
local function examine(ids, from, to)
  local last = from - 1
  while last < to and #found < limit and examined < budget do
    local n = math.min(to - last, budget - examined, math.max(limit - #found, 32))
    local slice = {}
    for i = last + 1, last + n do slice[#slice + 1] = ids[i] end
    local statuses, specs
    if status_test then statuses = redis.call('HMGET', k_job_status, unpack(slice)) end
    if want_type ~= '' then specs = redis.call('HMGET', k_job_spec, unpack(slice)) end
    for j = 1, n do
      examined = examined + 1
      last = last + 1
      local ok = true
      if statuses and not status_test(statuses[j] or false) then ok = false end
      if ok and specs and not type_matches(specs[j]) then ok = false end
      if ok then
        found[#found + 1] = slice[j]
        if #found >= limit then return last end
      end
    end
  end
  return last
end

local function full()
  return #found >= limit or examined >= budget
end

-- The ready lists: cursor "prio|offset" (offset into that list; a queue that moves between
-- pages may show a job twice or skip one, never more work).
local function walk_lists()
  local READY = {k_ready_high, k_ready_normal, k_ready_low}
  local p, off = 0, 0
  if cursor ~= '' then
    local a, b = string.match(cursor, '^(%d)|(%d+)$')
    p, off = tonumber(a), tonumber(b)
  end
  while p <= 2 do
    local ids = redis.call('LRANGE', READY[p + 1], off, off + CHUNK - 1)
    if #ids == 0 then
      p, off = p + 1, 0
    else
      local last = examine(ids, 1, #ids)
      off = off + last
      if full() then return p .. '|' .. off end
    end
  end
  return ''
end

-- Position (0-based, in walk order) of the first member not before the cursor member.
local function zseek(key, rev, score, member)
  local lo
  if rev then
    lo = redis.call('ZCOUNT', key, '(' .. score, '+inf')
  else
    lo = redis.call('ZCOUNT', key, '-inf', '(' .. score)
  end
  local hi = lo + redis.call('ZCOUNT', key, score, score)
  local range = rev and 'ZREVRANGE' or 'ZRANGE'
  while lo < hi do  -- equal scores: members in byte order (reversed when rev)
    local mid = math.floor((lo + hi) / 2)
    local m = first_word(redis.call(range, key, mid, mid)[1])
    local is_before
    if rev then is_before = before(member, m) else is_before = before(m, member) end
    if is_before then lo = mid + 1 else hi = mid end
  end
  return lo
end

-- Reads the ids of a member (space-separated) from the `from`-th on, up to `max` per call,
-- with plain finds: splitting a 1000-id batch with gmatch costs milliseconds.
local function id_reader(m, from)
  local pos, n = 1, #m
  for _ = 2, from do
    local s = string.find(m, ' ', pos, true)
    if not s then pos = n + 1 break end
    pos = s + 1
  end
  return function(max)
    local t = {}
    while #t < max and pos <= n do
      local e = string.find(m, ' ', pos, true)
      if e then
        t[#t + 1] = string.sub(m, pos, e - 1)
        pos = e + 1
      else
        t[#t + 1] = string.sub(m, pos)
        pos = n + 1
      end
    end
    return t
  end
end

local function walk_zset(key, rev)
  -- a member of the expiry set is a whole acknowledged batch (up to 1000 ids): fetch few
  local chunk_size = (key == k_expiry) and 2 or CHUNK
  local pos, cur_score, cur_first, cur_off = 0, nil, nil, 0
  if cursor ~= '' then
    local s, f, o = string.match(cursor, '^([%d.]+)|(%S-)|(%d+)$')
    cur_score, cur_first, cur_off = s, f, tonumber(o)
    pos = zseek(key, rev, cur_score, cur_first)
  end
  local range = rev and 'ZREVRANGE' or 'ZRANGE'
  while true do
    local chunk = redis.call(range, key, pos, pos + chunk_size - 1, 'WITHSCORES')
    if #chunk == 0 then return '' end
    for i = 1, #chunk, 2 do
      local member, score = chunk[i], chunk[i + 1]
      local first = first_word(member)
      local done = 0
      if cur_first and first == cur_first and score == cur_score then done = cur_off end
      cur_first = nil
      local read = id_reader(member, done + 1)
      while true do
        local ids = read(math.min(budget - examined, math.max(limit - #found, 32)))
        if #ids == 0 then break end
        done = done + examine(ids, 1, #ids)
        if full() then return score .. '|' .. first .. '|' .. done end
      end
    end
    pos = pos + #chunk / 2
  end
end

local next_cursor
if state == 'queued' then
  next_cursor = walk_lists()
elseif state == 'running' then
  next_cursor = walk_zset(k_lease, false)
elseif state == 'delayed' or state == 'failed' then
  next_cursor = walk_zset(k_delayed, false)
elseif state == 'dead' then
  next_cursor = walk_zset(k_dead, true)
else
  next_cursor = walk_zset(k_expiry, true)
end

return job_rows({next_cursor}, k_lease, JOB_COLUMNS, found)

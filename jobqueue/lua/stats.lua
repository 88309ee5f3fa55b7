-- Queue depth and totals in one step, O(1)/O(log n).
--! KEYS: ready_high ready_normal ready_low lease delayed dead counters job_spec job_run_at
-- Returns {ready_in_lists, due_delayed, delayed_total, in_flight, dead, oldest_ready_ms
--          (-1 when none), now_ms, enqueued, completed, failed, ready high, ready normal,
--          ready low (the lists alone)}
local now = now_ms()
local READY = {k_ready_high, k_ready_normal, k_ready_low}
local in_lists = 0
local oldest = -1
local lens = {}
for p = 1, 3 do
  local len = redis.call('LLEN', READY[p])
  lens[p] = len
  if len > 0 then
    in_lists = in_lists + len
    local id = redis.call('LINDEX', READY[p], 0)
    if id then
      -- waiting since it fell due (delayed/retried jobs) or since it was created
      local since = tonumber(redis.call('HGET', k_job_run_at, id))
      if not since then
        local spec = redis.call('HGET', k_job_spec, id)
        if spec then since = spec_meta(spec) end
      end
      if since and (oldest < 0 or since < oldest) then oldest = since end
    end
  end
end
local due = redis.call('ZCOUNT', k_delayed, '-inf', now)
if due > 0 then
  local head = redis.call('ZRANGE', k_delayed, 0, 0, 'WITHSCORES')
  local since = tonumber(head[2])
  if oldest < 0 or since < oldest then oldest = since end
end
local c = redis.call('HMGET', k_counters, 'enqueued', 'completed', 'failed')
return {in_lists, due, redis.call('ZCARD', k_delayed), redis.call('ZCARD', k_lease),
        redis.call('ZCARD', k_dead), oldest, now,
        tonumber(c[1]) or 0, tonumber(c[2]) or 0, tonumber(c[3]) or 0, lens[1], lens[2], lens[3]}

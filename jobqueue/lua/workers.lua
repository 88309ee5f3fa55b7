-- List live workers (expired heartbeats are forgotten first).
--! KEYS: workers workers_exp
-- Returns HGETALL-style flat list: worker id, "busy|in_flight|last_seen_ms".
local now = now_ms()
local gone = redis.call('ZRANGEBYSCORE', k_workers_exp, '-inf', now)
if #gone > 0 then
  for i = 1, #gone, 1000 do
    local chunk = {}
    for j = i, math.min(i + 999, #gone) do chunk[#chunk + 1] = gone[j] end
    redis.call('HDEL', k_workers, unpack(chunk))
    redis.call('ZREM', k_workers_exp, unpack(chunk))
  end
end
return redis.call('HGETALL', k_workers)

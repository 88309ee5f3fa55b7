-- Is there work for an idle worker? Ready count and time until the next delayed job is due.
--! KEYS: ready_high ready_normal ready_low delayed
-- Returns {ready (incl. due delayed), ms until next due delayed job (-1 when none)}
local now = now_ms()
local n = redis.call('LLEN', k_ready_high) + redis.call('LLEN', k_ready_normal)
  + redis.call('LLEN', k_ready_low)
local head = redis.call('ZRANGE', k_delayed, 0, 0, 'WITHSCORES')
local wait = -1
if #head > 0 then
  wait = tonumber(head[2]) - now
  if wait <= 0 then
    n = n + 1
    wait = 0
  end
end
return {n, wait}

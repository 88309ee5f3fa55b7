-- Record a worker heartbeat and forget workers whose heartbeat expired.
--! KEYS: workers workers_exp
-- ARGV: worker id, busy (1/0), in_flight, ttl_ms
local now = now_ms()
local gone = redis.call('ZRANGEBYSCORE', k_workers_exp, '-inf', now, 'LIMIT', 0, 100)
if #gone > 0 then
  redis.call('HDEL', k_workers, unpack(gone))
  redis.call('ZREM', k_workers_exp, unpack(gone))
end
redis.call('HSET', k_workers, ARGV[1], ARGV[2] .. '|' .. ARGV[3] .. '|' .. now)
redis.call('ZADD', k_workers_exp, now + tonumber(ARGV[4]), ARGV[1])
return 1

-- Delete every key of the queue. Returns how many job records existed.
--! KEYS: @all
local n = redis.call('HLEN', k_job_spec)
redis.call('UNLINK', unpack(KEYS))
return n

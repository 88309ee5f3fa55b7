-- Delete one dead job with its record; any other job is left alone.
--! KEYS: dead events @columns
-- ARGV: id. Returns 1 if it was dead and is now gone, else 0.
local id = ARGV[1]
if redis.call('ZREM', k_dead, id) == 0 then return 0 end
delete_jobs(JOB_COLUMNS, {id})
redis.call('PUBLISH', k_events, '{"event":"deleted","id":"' .. id .. '"}')
return 1

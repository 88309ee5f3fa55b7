-- Delete up to `limit` dead jobs (oldest first) with their records.
--! KEYS: dead @columns
-- ARGV: limit. Returns how many were deleted.
local ids = redis.call('ZRANGE', k_dead, 0, tonumber(ARGV[1]) - 1)
if #ids == 0 then return 0 end
delete_jobs(JOB_COLUMNS, ids)
redis.call('ZREM', k_dead, unpack(ids))
return #ids

-- Read full job records: given ids, or a page of the dead-letter queue (oldest first).
--! KEYS: dead lease @columns
-- ARGV: 'ids', id... | 'dead', offset, limit
-- Returns {ids, lease deadlines (nil = not leased), column values (one list per column,
-- in COLUMNS order)...}
local ids
if ARGV[1] == 'dead' then
  local off = tonumber(ARGV[2])
  ids = redis.call('ZRANGE', k_dead, off, off + tonumber(ARGV[3]) - 1)
else
  ids = {}
  for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
end
return job_rows({}, k_lease, JOB_COLUMNS, ids)

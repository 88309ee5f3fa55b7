-- Extend the leases of jobs still held with the given tokens.
--! KEYS: lease job_run
-- ARGV: lease_ms, ids (space-separated), tokens (space-separated). Returns a flags string.
local lease_ms = tonumber(ARGV[1])
local ids = words(ARGV[2])
local toks = words(ARGV[3])
if #ids == 0 then return '' end
local runs = redis.call('HMGET', k_job_run, unpack(ids))
local leased = redis.call('ZMSCORE', k_lease, unpack(ids))
local deadline = now_ms() + lease_ms
local flags, z = {}, {}
for i = 1, #ids do
  if leased[i] and run_token(runs[i]) == toks[i] then
    flags[i] = '1'
    z[#z + 1] = deadline
    z[#z + 1] = ids[i]
  else
    flags[i] = '0'
  end
end
if #z > 0 then bulk('ZADD', k_lease, z) end
return table.concat(flags)

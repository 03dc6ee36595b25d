-- renew: extend the deadline of lease groups (the consumer's heartbeat).
-- KEYS: the standard thirteen (see _common.lua).
-- ARGV[1] now ms or ""
-- ARGV[2] lease duration in ms, counted from now
-- ARGV[3..] lease groups
-- A group that is gone expired and was reclaimed: its items are lost to the
-- caller and will run elsewhere.
-- Returns the groups that are gone.
local now = now_ms()
local deadline = now + tonumber(ARGV[2])
local lost = {}
for k = 3, #ARGV do
    if redis.call('ZADD', K_LEASES, 'XX', 'CH', deadline, ARGV[k]) == 0
        and not redis.call('ZSCORE', K_LEASES, ARGV[k]) then
        lost[#lost + 1] = ARGV[k]
    end
end
return lost

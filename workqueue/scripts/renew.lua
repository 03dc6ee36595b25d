-- renew: extend the caller's leases (the consumer's heartbeat).
-- KEYS: the standard eleven (see _common.lua).
-- ARGV[1] now ms or ""
-- ARGV[2] lease token of the caller
-- ARGV[3] lease duration in ms, counted from now
-- ARGV[4..] ids
-- Returns the ids whose lease the caller no longer holds.
local now = now_ms()
local token = ARGV[2]
local deadline = now + tonumber(ARGV[3])
local members = {}
for k = 4, #ARGV do members[#members + 1] = token .. '|' .. ARGV[k] end
local present = zpresent(K_LEASED, members)
local pairs_, lost = {}, {}
for k, member in ipairs(members) do
    if present[k] then
        pairs_[#pairs_ + 1] = deadline
        pairs_[#pairs_ + 1] = member
    else
        lost[#lost + 1] = ARGV[k + 3]
    end
end
if #pairs_ > 0 then call_chunked('ZADD', K_LEASED, pairs_, 2) end
return lost

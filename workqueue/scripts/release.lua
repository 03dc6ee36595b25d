-- release: hand leased items back (graceful shutdown); no attempt is counted.
-- KEYS: the standard eleven (see _common.lua).
-- ARGV[1] now ms or ""
-- ARGV[2] lease token of the caller
-- ARGV[3..] ids
-- The items go to the head of pending, so a peer takes them next.
-- Returns the number of items released (leases no longer held are skipped).
local token = ARGV[2]
local members, ids = {}, {}
for k = 3, #ARGV do members[#members + 1] = token .. '|' .. ARGV[k] end
local present = zpresent(K_LEASED, members)
local held = {}
for k, member in ipairs(members) do
    if present[k] then
        held[#held + 1] = member
        ids[#ids + 1] = ARGV[k + 2]
    end
end
if #held > 0 then
    call_chunked('ZREM', K_LEASED, held)
    call_chunked('LPUSH', K_PENDING, ids)
end
return #held

-- ack: mark leased items done, storing an optional result.
-- KEYS: the standard eleven (see _common.lua).
-- ARGV[1] now ms or ""
-- ARGV[2] lease token of the caller
-- ARGV[3..] id, result pairs; result is a JSON text, or "" for no result
-- An item whose lease the caller no longer holds (it expired and was
-- reclaimed) is not touched: its new owner will ack it.
-- Returns the ids whose lease was lost.
local token = ARGV[2]
local n = (#ARGV - 2) / 2
local members = {}
for k = 1, n do members[k] = token .. '|' .. ARGV[1 + 2 * k] end
local present = zpresent(K_LEASED, members)
local held, ids, results, lost = {}, {}, {}, {}
for k = 1, n do
    local id = ARGV[1 + 2 * k]
    if present[k] then
        held[#held + 1] = members[k]
        ids[#ids + 1] = id
        local result = ARGV[2 + 2 * k]
        if result ~= '' then
            results[#results + 1] = id
            results[#results + 1] = result
        end
    else
        lost[#lost + 1] = id
    end
end
if #held > 0 then
    call_chunked('ZREM', K_LEASED, held)
    call_chunked('HDEL', K_ITEMS, ids)
    call_chunked('HDEL', K_ATTEMPTS, ids)
    if #results > 0 then call_chunked('HSET', K_RESULTS, results, 2) end
    redis.call('HINCRBY', K_META, 'done', #held)
end
return lost

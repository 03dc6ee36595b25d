-- ack: mark leased items done, storing an optional result.
-- KEYS: the standard thirteen (see _common.lua).
-- ARGV[1] now ms or ""
-- ARGV[2] the lease group that holds the items
-- ARGV[3] "1" if this settles the group's last items (the group is closed)
-- ARGV[4..] id, result pairs; result is a JSON text, or "" for no result
-- An item the group no longer holds (its lease expired and the item was
-- reclaimed) is not touched: its new holder will ack it.
-- Returns the ids whose lease was lost.
local group = ARGV[2]
local ids = {}
for k = 4, #ARGV, 2 do ids[#ids + 1] = ARGV[k] end
local held = held_by(group, ids)
local mine, results, lost = {}, {}, {}
for k, id in ipairs(ids) do
    if held[k] then
        mine[#mine + 1] = id
        local result = ARGV[3 + 2 * k]
        if result ~= '' then
            results[#results + 1] = id
            results[#results + 1] = result
        end
    else
        lost[#lost + 1] = id
    end
end
if #mine > 0 then
    call_chunked('HDEL', K_OWNERS, mine)
    call_chunked('HDEL', K_ITEMS, mine)
    call_chunked('HDEL', K_ATTEMPTS, mine)
    if #results > 0 then call_chunked('HSET', K_RESULTS, results, 2) end
    redis.call('HINCRBY', K_META, 'done', #mine)
end
if ARGV[3] == '1' then close_group(group) end
return lost

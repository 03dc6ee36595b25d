-- release: hand leased items back (graceful shutdown); no attempt is counted.
-- KEYS: the standard thirteen (see _common.lua).
-- ARGV[1] now ms or ""
-- ARGV[2] the lease group that holds the items
-- ARGV[3] "1" if this settles the group's last items (the group is closed)
-- ARGV[4..] ids
-- The items go to the head of pending, so a peer takes them next. Items the
-- group no longer holds are skipped.
-- Returns the number of items released.
local group = ARGV[2]
local ids = {}
for k = 4, #ARGV do ids[#ids + 1] = ARGV[k] end
local held = held_by(group, ids)
local mine = {}
for k, id in ipairs(ids) do
    if held[k] then mine[#mine + 1] = id end
end
if #mine > 0 then
    call_chunked('HDEL', K_OWNERS, mine)
    call_chunked('LPUSH', K_PENDING, mine)
end
if ARGV[3] == '1' then close_group(group) end
return #mine

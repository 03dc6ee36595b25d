-- requeue: move dead-lettered items back to pending with fresh attempts.
-- KEYS: the standard thirteen (see _common.lua).
-- ARGV[1] now ms or ""
-- ARGV[2] most items to move (the oldest dead first)
-- Returns the number of items moved.
local ids = redis.call('ZRANGE', K_DEAD, 0, tonumber(ARGV[2]) - 1)
if #ids > 0 then
    call_chunked('ZREM', K_DEAD, ids)
    call_chunked('HDEL', K_ERRORS, ids)
    call_chunked('HDEL', K_ATTEMPTS, ids)
    call_chunked('RPUSH', K_PENDING, ids)
end
return #ids

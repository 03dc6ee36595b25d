-- lease: reclaim expired lease groups, then lease up to `count` items as a new group.
-- KEYS: the standard thirteen (see _common.lua).
-- ARGV[1] now ms or ""
-- ARGV[2] group: a new, unique lease group name chosen by the caller
-- ARGV[3] count: most items to lease (0 only reclaims and reports)
-- ARGV[4] lease duration in ms
-- ARGV[5] max attempts: a reclaimed item that reached it is dead-lettered
-- Step 1, reclaim: up to 16 groups whose deadline passed are dissolved; each
-- item they still hold (its consumer died or stalled) counts one attempt and
-- goes back to the head of pending, or to the dead-letter set once its
-- attempts reach the maximum.
-- Step 2, lease: retries that are due come first, then the head of pending.
-- Returns {reclaimed, pending, leased, delayed, done, dead, sealed, next_due, now,
--          ids, texts, attempts}
-- where the counts are taken after the lease, next_due is the earliest retry
-- or lease deadline in ms (-1 if none), and ids, texts and attempts are three
-- aligned arrays: the leased ids, their item JSON (nil for an id whose item is
-- missing, which is not leased) and the attempts already used (nil for none).
local now = now_ms()
local group = ARGV[2]
local count = tonumber(ARGV[3])
local lease_ms = tonumber(ARGV[4])
local max_attempts = tonumber(ARGV[5])

local reclaimed = 0
local expired = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', now, 'LIMIT', 0, 16)
for _, old in ipairs(expired) do
    local ids = split_ids(redis.call('HGET', K_GROUPS, old) or '')
    local held = held_by(old, ids)
    for k, id in ipairs(ids) do
        if held[k] then
            redis.call('HDEL', K_OWNERS, id)
            local used = redis.call('HINCRBY', K_ATTEMPTS, id, 1)
            if used >= max_attempts then
                bury(id, now, '{"type":"LeaseExpired","message":"the lease expired: the consumer '
                    .. 'holding the item stopped renewing it (killed, crashed or paused)",'
                    .. '"traceback":"","attempts":' .. used .. '}')
            else
                redis.call('LPUSH', K_PENDING, id)
            end
            reclaimed = reclaimed + 1
        end
    end
    close_group(old)
end

local ids = {}
if count > 0 then
    local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now, 'LIMIT', 0, count)
    if #due > 0 then
        call_chunked('ZREM', K_DELAYED, due)
        for _, id in ipairs(due) do ids[#ids + 1] = id end
    end
    if #ids < count then
        local popped = redis.call('LPOP', K_PENDING, count - #ids)
        if popped then
            for _, id in ipairs(popped) do ids[#ids + 1] = id end
        end
    end
end

local texts, used = {}, {}
if #ids > 0 then
    texts = redis.call('HMGET', K_ITEMS, unpack(ids))
    used = redis.call('HMGET', K_ATTEMPTS, unpack(ids))
    local owned, n, kept = {}, 0, {}
    for k = 1, #ids do
        -- An id without an item can only come from keys edited by hand; it is
        -- not leased, and its nil text tells the caller to skip it.
        if texts[k] then
            owned[n + 1] = ids[k]
            owned[n + 2] = group
            n = n + 2
            kept[#kept + 1] = ids[k]
        end
    end
    if n > 0 then
        call_chunked('HSET', K_OWNERS, owned, 2)
        redis.call('HSET', K_GROUPS, group, table.concat(kept, '\n'))
        redis.call('ZADD', K_LEASES, now + lease_ms, group)
    end
end

local s = stats_of()
return {reclaimed, s[1], s[2], s[3], s[4], s[5], s[6], s[7], now, ids, texts, used}

-- lease: reclaim expired leases, then lease up to `count` items.
-- KEYS: the standard eleven (see _common.lua).
-- ARGV[1] now ms or ""
-- ARGV[2] lease token (16 hex characters) of the caller
-- ARGV[3] count: most items to lease (0 only reclaims and reports)
-- ARGV[4] lease duration in ms
-- ARGV[5] max attempts: a reclaimed item that reached it is dead-lettered
-- Step 1, reclaim: up to max(count, 100) leases whose deadline passed go back
-- to the head of pending with one attempt counted (a consumer died holding
-- them), or to the dead-letter set once the attempts reach the maximum.
-- Step 2, lease: retries that are due come first, then the head of pending.
-- Returns {reclaimed, pending, leased, delayed, done, dead, sealed, next_due, now,
--          id1, item1, attempts1, id2, item2, attempts2, ...}
-- where the counts are taken after the lease, next_due is the earliest retry
-- or lease deadline in ms (-1 if none) and attemptsN the attempts already used.
local now = now_ms()
local token = ARGV[2]
local count = tonumber(ARGV[3])
local lease_ms = tonumber(ARGV[4])
local max_attempts = tonumber(ARGV[5])

local reclaimed = 0
local expired = redis.call('ZRANGEBYSCORE', K_LEASED, '-inf', now, 'LIMIT', 0, math.max(count, 100))
for _, member in ipairs(expired) do
    local id = string.sub(member, 18)
    redis.call('ZREM', K_LEASED, member)
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

local out = {}
if #ids > 0 then
    local items, used = {}, {}
    local i = 1
    while i <= #ids do
        local last = math.min(i + CHUNK - 1, #ids)
        local part = redis.call('HMGET', K_ITEMS, unpack(ids, i, last))
        local uparts = redis.call('HMGET', K_ATTEMPTS, unpack(ids, i, last))
        for j = 1, #part do
            items[i + j - 1] = part[j]
            used[i + j - 1] = uparts[j]
        end
        i = last + 1
    end
    local deadline = now + lease_ms
    local pairs_ = {}
    for k, id in ipairs(ids) do
        -- An id without an item can only come from keys edited by hand; it is
        -- dropped rather than leased as nothing.
        if items[k] then
            pairs_[#pairs_ + 1] = deadline
            pairs_[#pairs_ + 1] = token .. '|' .. id
            out[#out + 1] = id
            out[#out + 1] = items[k]
            out[#out + 1] = tonumber(used[k] or '0')
        end
    end
    if #pairs_ > 0 then call_chunked('ZADD', K_LEASED, pairs_, 2) end
end

local s = stats_of()
local head = {reclaimed, s[1], s[2], s[3], s[4], s[5], s[6], s[7], now}
for _, v in ipairs(out) do head[#head + 1] = v end
return head

-- Shared prologue, prepended to every script by workqueue/scripts.py.
--
-- Every script receives the same KEYS, all of one queue, in this order (all
-- share the hash tag {queue}, so a queue lives in one Redis Cluster slot):
--   KEYS[1]  pending   list    ids ready to lease, leased from the head
--   KEYS[2]  items     hash    id -> item JSON, from enqueue until ack
--   KEYS[3]  leases    zset    lease group -> its deadline (ms)
--   KEYS[4]  owners    hash    leased id -> the lease group holding it
--   KEYS[5]  groups    hash    lease group -> its ids, joined by "\n"
--   KEYS[6]  delayed   zset    id -> time its retry is due (ms)
--   KEYS[7]  attempts  hash    id -> attempts used so far (absent = 0)
--   KEYS[8]  dead      zset    id -> time it was dead-lettered (ms)
--   KEYS[9]  errors    hash    id -> last error JSON of a dead item
--   KEYS[10] results   hash    id -> result JSON given with the ack
--   KEYS[11] seen      set     every caller-given id ever enqueued
--   KEYS[12] meta      hash    sealed, done, seq
--   KEYS[13] batches   zset    producer batch token -> time applied (ms)
-- ARGV[1] is always the current time in ms, or "" to use the server's clock.
--
-- A lease group is the set of items one lease call handed out; its name is
-- chosen by the consumer and unique (consumer token, ":", a counter). The
-- group has one deadline, renewed by the heartbeat; an item is held while
-- owners[id] names the group. Ids never hold control characters, so "\n"
-- separates them safely.

local K_PENDING, K_ITEMS, K_LEASES, K_OWNERS, K_GROUPS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_DELAYED, K_ATTEMPTS, K_DEAD, K_ERRORS = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local K_RESULTS, K_SEEN, K_META, K_BATCHES = KEYS[10], KEYS[11], KEYS[12], KEYS[13]

local function now_ms()
    if ARGV[1] ~= nil and ARGV[1] ~= '' then
        return tonumber(ARGV[1])
    end
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Lua's unpack is limited by its C stack (about 8000 values): every command
-- that takes a variable number of arguments goes through this helper.
local CHUNK = 2000
local function call_chunked(cmd, key, list, stride)
    stride = stride or 1
    local step = CHUNK * stride
    local i = 1
    while i <= #list do
        local last = math.min(i + step - 1, #list)
        redis.call(cmd, key, unpack(list, i, last))
        i = last + 1
    end
end

-- Which of `ids` the lease group `group` holds: a list of booleans aligned
-- with ids (HMGET on owners, chunked).
local function held_by(group, ids)
    local out = {}
    local i = 1
    while i <= #ids do
        local last = math.min(i + CHUNK - 1, #ids)
        local owners = redis.call('HMGET', K_OWNERS, unpack(ids, i, last))
        for j = 1, #owners do
            out[i + j - 1] = owners[j] == group
        end
        i = last + 1
    end
    return out
end

-- Forget a lease group whose items were all acked, failed or released.
local function close_group(group)
    redis.call('ZREM', K_LEASES, group)
    redis.call('HDEL', K_GROUPS, group)
end

local function split_ids(text)
    local ids = {}
    for id in string.gmatch(text, '[^\n]+') do ids[#ids + 1] = id end
    return ids
end

-- One dead-letter: the caller gives the error JSON.
local function bury(id, now, err)
    redis.call('ZADD', K_DEAD, now, id)
    redis.call('HSET', K_ERRORS, id, err)
end

local function stats_of()
    local next_due = -1
    local d = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
    if d[2] then next_due = tonumber(d[2]) end
    local l = redis.call('ZRANGE', K_LEASES, 0, 0, 'WITHSCORES')
    if l[2] and (next_due < 0 or tonumber(l[2]) < next_due) then next_due = tonumber(l[2]) end
    return {
        redis.call('LLEN', K_PENDING),
        redis.call('HLEN', K_OWNERS),
        redis.call('ZCARD', K_DELAYED),
        tonumber(redis.call('HGET', K_META, 'done') or '0'),
        redis.call('ZCARD', K_DEAD),
        tonumber(redis.call('HGET', K_META, 'sealed') or '0'),
        next_due,
    }
end

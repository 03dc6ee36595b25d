-- Shared prologue, prepended to every script by workqueue/scripts.py.
--
-- Every script receives the same KEYS, all of one queue, in this order (all
-- share the hash tag {queue}, so a queue lives in one Redis Cluster slot):
--   KEYS[1]  pending   list    ids ready to lease, leased from the head
--   KEYS[2]  items     hash    id -> item JSON, from enqueue until ack
--   KEYS[3]  leased    zset    "<token>|<id>" -> lease deadline (ms)
--   KEYS[4]  delayed   zset    id -> time the retry is due (ms)
--   KEYS[5]  attempts  hash    id -> attempts used so far (absent = 0)
--   KEYS[6]  dead      zset    id -> time it was dead-lettered (ms)
--   KEYS[7]  errors    hash    id -> last error JSON of a dead item
--   KEYS[8]  results   hash    id -> result JSON given with the ack
--   KEYS[9]  seen      set     every caller-given id ever enqueued
--   KEYS[10] meta      hash    sealed, done, seq
--   KEYS[11] batches   zset    producer batch token -> time applied (ms)
-- ARGV[1] is always the current time in ms, or "" to use the server's clock.
-- A lease token is 16 hex characters, so the id of a leased member is the
-- member from its 18th character on.

local K_PENDING, K_ITEMS, K_LEASED, K_DELAYED, K_ATTEMPTS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_DEAD, K_ERRORS, K_RESULTS, K_SEEN, K_META, K_BATCHES = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]

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

-- Which of the members are in the zset (ZMSCORE, chunked); returns a table
-- of booleans aligned with members.
local function zpresent(key, members)
    local out = {}
    local i = 1
    while i <= #members do
        local last = math.min(i + CHUNK - 1, #members)
        local scores = redis.call('ZMSCORE', key, unpack(members, i, last))
        for j = 1, #scores do
            out[i + j - 1] = scores[j] ~= false
        end
        i = last + 1
    end
    return out
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
    local l = redis.call('ZRANGE', K_LEASED, 0, 0, 'WITHSCORES')
    if l[2] and (next_due < 0 or tonumber(l[2]) < next_due) then next_due = tonumber(l[2]) end
    return {
        redis.call('LLEN', K_PENDING),
        redis.call('ZCARD', K_LEASED),
        redis.call('ZCARD', K_DELAYED),
        tonumber(redis.call('HGET', K_META, 'done') or '0'),
        redis.call('ZCARD', K_DEAD),
        tonumber(redis.call('HGET', K_META, 'sealed') or '0'),
        next_due,
    }
end

-- enqueue: add a batch of items to the pending list.
-- KEYS: the standard thirteen (see _common.lua).
-- ARGV[1] now ms or ""
-- ARGV[2] batch token: a producer-chosen unique string, or "" for none. A
--         batch whose token was applied in the last 24 hours is not applied
--         again (a retry after a lost reply adds no duplicates).
-- ARGV[3] "ids": ARGV[4..] are id, item pairs; an id seen before is skipped
--         "gen": ARGV[4..] are items; ids "#<n>" come from the meta seq counter
-- Returns {enqueued, skipped_duplicates, replayed (0 or 1)}.
-- Error "WQSEALED": the queue is sealed and the batch holds new items; nothing
-- of the batch is applied.
local now = now_ms()
local token = ARGV[2]
local mode = ARGV[3]
if token ~= '' and redis.call('ZSCORE', K_BATCHES, token) then
    return {0, 0, 1}
end
local sealed = redis.call('HGET', K_META, 'sealed') == '1'
local ids, fields = {}, {}
local dups = 0
if mode == 'ids' then
    local n = (#ARGV - 3) / 2
    local cand = {}
    for i = 1, n do cand[i] = ARGV[2 + 2 * i] end
    local known = {}
    local i = 1
    while i <= n do
        local last = math.min(i + CHUNK - 1, n)
        local flags = redis.call('SMISMEMBER', K_SEEN, unpack(cand, i, last))
        for j = 1, #flags do known[i + j - 1] = flags[j] == 1 end
        i = last + 1
    end
    local in_batch = {}
    for k = 1, n do
        local id = cand[k]
        if known[k] or in_batch[id] then
            dups = dups + 1
        else
            in_batch[id] = true
            ids[#ids + 1] = id
            fields[#fields + 1] = id
            fields[#fields + 1] = ARGV[3 + 2 * k]
        end
    end
    if #ids > 0 and sealed then return redis.error_reply('WQSEALED queue is sealed') end
    if #ids > 0 then call_chunked('SADD', K_SEEN, ids) end
elseif mode == 'gen' then
    local n = #ARGV - 3
    if n > 0 and sealed then return redis.error_reply('WQSEALED queue is sealed') end
    if n > 0 then
        local first = redis.call('HINCRBY', K_META, 'seq', n) - n
        for k = 1, n do
            local id = '#' .. (first + k)
            ids[k] = id
            fields[2 * k - 1] = id
            fields[2 * k] = ARGV[3 + k]
        end
    end
else
    return redis.error_reply('WQBADARG enqueue mode must be ids or gen')
end
if #ids > 0 then
    call_chunked('HSET', K_ITEMS, fields, 2)
    call_chunked('RPUSH', K_PENDING, ids)
end
if token ~= '' then
    redis.call('ZADD', K_BATCHES, now, token)
    redis.call('ZREMRANGEBYSCORE', K_BATCHES, '-inf', now - 86400000)
end
return {#ids, dups, 0}

-- fail: record a failed attempt; retry later with back-off, or dead-letter.
-- KEYS: the standard eleven (see _common.lua).
-- ARGV[1] now ms or ""
-- ARGV[2] lease token of the caller
-- ARGV[3] max attempts
-- ARGV[4] first retry delay in ms (doubles per attempt)
-- ARGV[5] cap of the retry delay in ms
-- ARGV[6..] id, permanent ("1" dead-letters at once), jitter (a number in
--           [0, 1) chosen by the caller), error JSON: four values per item
-- The delay before retry n is d = min(cap, first * 2^(n-1)), then jittered to
-- d/2 + d/2 * jitter. The error JSON is stored when the item is dead-lettered.
-- Returns id, outcome, delay_ms triples: outcome "retry", "dead" or "lost"
-- (the caller no longer held the lease; nothing was changed).
local now = now_ms()
local token = ARGV[2]
local max_attempts = tonumber(ARGV[3])
local first = tonumber(ARGV[4])
local cap = tonumber(ARGV[5])
local out = {}
for k = 6, #ARGV, 4 do
    local id = ARGV[k]
    local member = token .. '|' .. id
    if redis.call('ZREM', K_LEASED, member) == 0 then
        out[#out + 1] = id; out[#out + 1] = 'lost'; out[#out + 1] = 0
    else
        local used = redis.call('HINCRBY', K_ATTEMPTS, id, 1)
        if ARGV[k + 1] == '1' or used >= max_attempts then
            bury(id, now, ARGV[k + 3])
            out[#out + 1] = id; out[#out + 1] = 'dead'; out[#out + 1] = 0
        else
            local d = math.min(cap, first * 2 ^ (used - 1))
            d = math.floor(d / 2 + d / 2 * tonumber(ARGV[k + 2]))
            redis.call('ZADD', K_DELAYED, now + d, id)
            out[#out + 1] = id; out[#out + 1] = 'retry'; out[#out + 1] = d
        end
    end
end
return out

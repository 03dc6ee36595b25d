-- fail: record failed attempts; retry later with back-off, or dead-letter.
-- KEYS: the standard thirteen (see _common.lua).
-- ARGV[1] now ms or ""
-- ARGV[2] the lease group that holds the items
-- ARGV[3] "1" if this settles the group's last items (the group is closed)
-- ARGV[4] max attempts
-- ARGV[5] first retry delay in ms (doubles per attempt)
-- ARGV[6] cap of the retry delay in ms
-- ARGV[7..] id, permanent ("1" dead-letters at once), jitter (a number in
--           [0, 1) chosen by the caller), error JSON: four values per item
-- The delay before retry n is d = min(cap, first * 2^(n-1)), jittered to
-- d/2 + d/2 * jitter. The error JSON is kept when the item is dead-lettered.
-- Returns id, outcome, delay_ms triples: outcome "retry", "dead" or "lost"
-- (the group no longer held the item; nothing was changed).
local now = now_ms()
local group = ARGV[2]
local max_attempts = tonumber(ARGV[4])
local first = tonumber(ARGV[5])
local cap = tonumber(ARGV[6])
local out = {}
for k = 7, #ARGV, 4 do
    local id = ARGV[k]
    if redis.call('HGET', K_OWNERS, id) ~= group then
        out[#out + 1] = id; out[#out + 1] = 'lost'; out[#out + 1] = 0
    else
        redis.call('HDEL', K_OWNERS, id)
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
if ARGV[3] == '1' then close_group(group) end
return out

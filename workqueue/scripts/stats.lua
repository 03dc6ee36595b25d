-- stats: the queue's counts, read atomically.
-- KEYS: the standard thirteen (see _common.lua).
-- ARGV[1] now ms or ""
-- Returns {pending, leased, delayed, done, dead, sealed (0/1), next_due ms or -1, now}.
local s = stats_of()
s[#s + 1] = now_ms()
return s

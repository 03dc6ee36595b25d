-- seal: the producer will add no more items.
-- KEYS: the standard thirteen (see _common.lua).
-- ARGV[1] now ms or ""
-- Returns the stats, as stats.lua does.
redis.call('HSET', K_META, 'sealed', '1')
return stats_of()

-- Decide a payment held for risk review, exactly once: write the payment's new fields, take it
-- out of the review zset and, when approved, make it due in the pending zset (a reconciler then
-- sends it); when rejected, journal the decline. Refuses (returns 0) unless the payment is still
-- held at the version the caller read, so two operators (or a double click) decide it once.
--
-- KEYS[1] payment hash   KEYS[2] review zset   KEYS[3] pending zset   KEYS[4] journal stream
-- ARGV[1] expected version   ARGV[2] the payment's fields (a JSON array name, value, name,
-- value...)   ARGV[3] pending score ms (-1 = not due)   ARGV[4] journal entry (a JSON array
-- like ARGV[2], '' = none)   ARGV[5] journal max length   ARGV[6] payment id
local cur = redis.call('HMGET', KEYS[1], 'ver', 'rrev')
if cur[1] ~= ARGV[1] or cur[2] ~= 'HELD' then return 0 end
redis.call('HSET', KEYS[1], unpack(cjson.decode(ARGV[2])))
redis.call('ZREM', KEYS[2], ARGV[6])
if tonumber(ARGV[3]) >= 0 then redis.call('ZADD', KEYS[3], ARGV[3], ARGV[6]) end
if ARGV[4] ~= '' then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', unpack(cjson.decode(ARGV[4])))
end
return 1

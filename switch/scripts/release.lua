-- Undo a follow-up claim whose request certainly never reached the channel: unlock the payment
-- and forget the idempotency key, so the same key may be retried. Nothing else changed.
--
-- KEYS[1] idempotency hash   KEYS[2] payment hash   KEYS[3] pending zset
-- ARGV[1] operation reference   ARGV[2] payment id
if redis.call('HGET', KEYS[2], 'busy') == ARGV[1] then
  redis.call('HSET', KEYS[2], 'busy', '', 'pop', '', 'pref', '', 'pamt', '0')
  redis.call('ZREM', KEYS[3], ARGV[2])
end
if redis.call('HGET', KEYS[1], 'state') == 'running' then redis.call('DEL', KEYS[1]) end
return 1

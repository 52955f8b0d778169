-- Lease due pending payments to one reconciler: move each due member's score to now + lease,
-- so another switch instance does not inquire about the same payment at the same time.
--
-- KEYS[1] pending zset   ARGV[1] lease ms   ARGV[2] batch size
-- Returns the leased payment ids.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), id) end
return due

-- Claim an idempotency key for a new payment, with the merchant's and a channel's rate limit,
-- and create the payment record: one round trip, all or nothing.
--
-- KEYS[1] idempotency hash   KEYS[2] payment hash   KEYS[3] pending zset
-- KEYS[4] merchant GCRA key  KEYS[5..] one GCRA key per candidate channel, in route order
-- ARGV[1] request fingerprint   ARGV[2] idempotency TTL s   ARGV[3] payment TTL s
-- ARGV[4] in-flight grace ms    ARGV[5] merchant emission interval us   ARGV[6] merchant tau us
-- ARGV[7] payment id   ARGV[8] candidate count n, then n triples (name, emission interval us,
-- tau us; 0 = no limit)
-- then the payment's hash fields as one JSON array of name, value pairs (all strings).
-- Returns {'new', index}, {'replay', response}, {'in_progress', payment id}, {'reused'},
-- or {'limited', scope, retry after us, channel name}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local idem = redis.call('HMGET', KEYS[1], 'fp', 'state', 'resp', 'pid')
if idem[1] then
  if idem[1] ~= ARGV[1] then return {'reused'} end
  if idem[2] == 'done' then return {'replay', idem[3]} end
  return {'in_progress', idem[4]}
end

local function gcra(key, interval, tau)
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - tau
  if allow_at > now then return nil, allow_at - now end
  return new_tat, 0
end

local m_tat, m_wait = gcra(KEYS[4], tonumber(ARGV[5]), tonumber(ARGV[6]))
if not m_tat then return {'limited', 'merchant', m_wait, ''} end

local n = tonumber(ARGV[8])
local chosen, c_tat, best_wait = nil, nil, nil
for i = 1, n do
  local base = 8 + (i - 1) * 3
  local interval = tonumber(ARGV[base + 2])
  if interval == 0 then chosen = i break end
  local tat, wait = gcra(KEYS[4 + i], interval, tonumber(ARGV[base + 3]))
  if tat then chosen, c_tat = i, tat break end
  if not best_wait or wait < best_wait then best_wait = wait end
end
if not chosen then return {'limited', 'channel', best_wait, ARGV[9]} end

redis.call('SET', KEYS[4], m_tat, 'PX', math.floor((m_tat - now) / 1000) + 1000)
if c_tat then
  redis.call('SET', KEYS[4 + chosen], c_tat, 'PX', math.floor((c_tat - now) / 1000) + 1000)
end
local now_ms = math.floor(now / 1000)
local pid = ARGV[7]
local fields = cjson.decode(ARGV[9 + n * 3])
fields[#fields + 1] = 'channel'
fields[#fields + 1] = ARGV[6 + chosen * 3]
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'state', 'running', 'pid', pid, 't', now_ms)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
redis.call('ZADD', KEYS[3], now_ms + tonumber(ARGV[4]), pid)
return {'new', chosen}

-- Claim an idempotency key for a capture, void or refund, with the merchant's and the payment's
-- channel's rate limits, and lock the payment for the operation: one round trip.
-- The legality checks mirror switch/lifecycle.py `check`.
--
-- KEYS[1] idempotency hash   KEYS[2] payment hash   KEYS[3] pending zset
-- KEYS[4] merchant GCRA key
-- ARGV[1] one JSON array of the arguments (see switch/store.py): [1] fingerprint
-- [2] idempotency TTL s (text)   [3] in-flight grace ms   [4] merchant emission interval us
-- [5] merchant tau us   [6] channel-limit count n   [7] unused   [8] operation (CAPTURE, VOID,
-- REFUND)   [9] amount ('' = default)   [10] currency ('' = not given)   [11] operation
-- reference   [12] payment id   [13..] n triples (channel name, emission interval us, tau us)
-- of the channels with limits.
-- The payment's channel is known only here, so its limit key ('ps:{ch:NAME}:rl') is built here;
-- like every channel-limit key it lives outside the merchant's slot (see switch/store.py).
-- Returns {'new', amount, payment fields...}, {'replay', response}, {'in_progress', id},
-- {'reused'}, {'not_found'}, {'currency', currency}, {'busy'}, {'state', status},
-- {'amount', limit}, or {'limited', scope, retry after us, channel}.
-- Computed numbers go to redis.call through int(): Redis turns a Lua number argument into text
-- with snprintf("%.17g"), which costs more than the command.
local function int(x)
  return string.format('%d', x)
end

local A = cjson.decode(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

-- A new key (the common case) costs one field lookup and no reply table.
local fp = redis.call('HGET', KEYS[1], 'fp')
if fp then
  if fp ~= A[1] then return {'reused'} end
  local idem = redis.call('HMGET', KEYS[1], 'state', 'resp', 'pid')
  if idem[1] == 'done' then return {'replay', idem[2]} end
  return {'in_progress', idem[3]}
end

local p = redis.call('HMGET', KEYS[2], 'status', 'cur', 'authorized', 'captured', 'refunded', 'busy', 'channel')
local status = p[1]
if not status then return {'not_found'} end
if A[10] ~= '' and A[10] ~= p[2] then return {'currency', p[2]} end
if (p[6] and p[6] ~= '') or status == 'PENDING' then return {'busy'} end

local op = A[8]
local amount
if op == 'CAPTURE' or op == 'VOID' then
  if status ~= 'AUTHORIZED' then return {'state', status} end
  local authorized = tonumber(p[3])
  amount = authorized
  if op == 'CAPTURE' and A[9] ~= '' then amount = tonumber(A[9]) end
  if amount > authorized then return {'amount', authorized} end
else
  if status ~= 'CAPTURED' and status ~= 'PARTIALLY_REFUNDED' then return {'state', status} end
  local left = tonumber(p[4]) - tonumber(p[5])
  amount = left
  if A[9] ~= '' then amount = tonumber(A[9]) end
  if amount > left then return {'amount', left} end
end

local function gcra(key, interval, tau)
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - tau
  if allow_at > now then return nil, allow_at - now end
  return new_tat, 0
end

local m_tat, m_wait = gcra(KEYS[4], tonumber(A[4]), tonumber(A[5]))
if not m_tat then return {'limited', 'merchant', m_wait, ''} end
local c_tat, c_key = nil, nil
for i = 0, tonumber(A[6]) - 1 do
  local base = 13 + i * 3
  if A[base] == p[7] then
    local wait
    c_key = 'ps:{ch:' .. p[7] .. '}:rl'
    c_tat, wait = gcra(c_key, tonumber(A[base + 1]), tonumber(A[base + 2]))
    if not c_tat then return {'limited', 'channel', wait, p[7]} end
  end
end
redis.call('SET', KEYS[4], int(m_tat), 'PX', int(math.floor((m_tat - now) / 1000) + 1000))
if c_tat then
  redis.call('SET', c_key, int(c_tat), 'PX', int(math.floor((c_tat - now) / 1000) + 1000))
end

local now_ms = math.floor(now / 1000)
redis.call('HSET', KEYS[2], 'busy', A[11], 'pop', op, 'pref', A[11], 'pamt', int(amount), 'pidem', KEYS[1])
redis.call('HSET', KEYS[1], 'fp', A[1], 'state', 'running', 'pid', A[12], 't', int(now_ms))
redis.call('EXPIRE', KEYS[1], A[2])
redis.call('ZADD', KEYS[3], int(now_ms + tonumber(A[3])), A[12])
local out = {'new', amount}
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all do out[#out + 1] = all[i] end
return out

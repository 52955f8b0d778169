-- Claim an idempotency key for a new payment, with the merchant's and a channel's rate limit,
-- count the risk rules' velocity windows and anomaly averages, and create the payment record:
-- one round trip, all or nothing.
--
-- KEYS[1] idempotency hash   KEYS[2] payment hash   KEYS[3] pending zset
-- KEYS[4] merchant GCRA key  KEYS[5..4+n] one GCRA key per candidate channel, in route order
-- KEYS[5+n] the merchant's risk review zset, then the risk spec's keys: one hash per velocity
-- window, then (with the anomaly rule) the instrument's and the merchant's average hashes
-- ARGV[1] one JSON array of the arguments (see switch/store.py): [1] request fingerprint
-- [2] idempotency TTL s   [3] payment TTL s   [4] in-flight grace ms   [5] merchant emission
-- interval us   [6] merchant tau us   [7] payment id   [8] candidate count n, then n triples
-- (name, emission interval us, tau us; 0 = no limit), then the payment's hash fields as an
-- array name, value, name, value... (all strings; without the channel and the risk verdict,
-- which this script writes), then the risk spec (an object, or '' = no rules; see
-- switch/risk.py): amount 'amt', the in-memory decision 'd' and rule 'r', velocity windows 'v'
-- (window ms, bucket ms, max count, max amount, action, rule), the anomaly rule 'a' (threshold
-- in thousandths, min history, alpha, action, memory s, rule).
-- Returns {'new', index, decision, rule, score in thousandths}, {'replay', response},
-- {'in_progress', payment id}, {'reused'}, or {'limited', scope, retry after us, channel name}.
-- A REJECT decision counts nothing; REVIEW counts the velocity windows but leaves the averages
-- alone (a held amount is no pattern yet), and holds the payment in the review zset instead of
-- the pending zset.
-- The TTLs come as strings and computed numbers go to redis.call through int(): Redis turns a
-- Lua number argument into text with snprintf("%.17g"), which costs more than the command.
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

local function gcra(key, interval, tau)
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - tau
  if allow_at > now then return nil, allow_at - now end
  return new_tat, 0
end

local m_tat, m_wait = gcra(KEYS[4], tonumber(A[5]), tonumber(A[6]))
if not m_tat then return {'limited', 'merchant', m_wait, ''} end

local n = tonumber(A[8])
local chosen, c_tat, best_wait = nil, nil, nil
for i = 1, n do
  local base = 8 + (i - 1) * 3
  local interval = tonumber(A[base + 2])
  if interval == 0 then chosen = i break end
  local tat, wait = gcra(KEYS[4 + i], interval, tonumber(A[base + 3]))
  if tat then chosen, c_tat = i, tat break end
  if not best_wait or wait < best_wait then best_wait = wait end
end
if not chosen then return {'limited', 'channel', best_wait, A[9]} end

local now_ms = math.floor(now / 1000)
local decision, rule, score = 'ALLOW', '', 0
local spec = A[10 + n * 3]
if type(spec) == 'table' then
  local rank = {ALLOW = 1, REVIEW = 2, REJECT = 3}
  local windows, averages = {}, {}
  decision, rule = spec.d, spec.r
  local function worse(d, r)
    if rank[d] > rank[decision] then decision, rule = d, r end
  end
  local amt = tonumber(spec.amt)
  local k = 5 + n
  if decision ~= 'REJECT' then
    for _, v in ipairs(spec.v) do
      k = k + 1
      -- A window of W ms is counted in buckets of W/20 ms: the current bucket and the 19
      -- before it. A payment older than W never counts; one younger than 0.95 W always does.
      local bucket = tonumber(v[2])
      local idx = math.floor(now_ms / bucket)
      local oldest = idx - math.floor(tonumber(v[1]) / bucket) + 1
      local h = redis.call('HGETALL', KEYS[k])
      local count, total, stale = 0, 0, {}
      for j = 1, #h, 2 do
        local b = tonumber(string.sub(h[j], 2))
        if b < oldest then
          stale[#stale + 1] = h[j]
        elseif string.sub(h[j], 1, 1) == 'c' then
          count = count + tonumber(h[j + 1])
        else
          total = total + tonumber(h[j + 1])
        end
      end
      local max_count, max_amount = tonumber(v[3]), tonumber(v[4])
      if (max_count > 0 and count + 1 > max_count) or (max_amount > 0 and total + amt > max_amount) then
        worse(v[5], v[6])
      end
      windows[#windows + 1] = {KEYS[k], idx, stale, tonumber(v[1]) + bucket}
    end
    if spec.a then
      local a = spec.a
      for i = 1, 2 do
        k = k + 1
        local e = redis.call('HMGET', KEYS[k], 'avg', 'n')
        local avg, seen = tonumber(e[1] or '0'), tonumber(e[2] or '0')
        if seen >= tonumber(a[2]) and avg > 0 then
          -- Capped so that it stays an integer when written (Lua prints 1e15 as '1e+15').
          local s = math.min(math.floor(amt * 1000 / avg), 1000000000000)
          if s > score then score = s end
        end
        averages[i] = {KEYS[k], avg, seen}
      end
      if score >= tonumber(a[1]) then worse(a[4], a[6]) end
    end
  end
  if decision ~= 'REJECT' then
    for _, w in ipairs(windows) do
      if #w[3] > 0 then redis.call('HDEL', w[1], unpack(w[3])) end
      redis.call('HINCRBY', w[1], 'c' .. w[2], 1)
      redis.call('HINCRBY', w[1], 'a' .. w[2], spec.amt)
      redis.call('PEXPIRE', w[1], w[4])
    end
  end
  if decision == 'ALLOW' and spec.a then
    local alpha = tonumber(spec.a[3])
    for _, e in ipairs(averages) do
      local avg = e[2] + alpha * (amt - e[2])
      if e[3] == 0 then avg = amt end
      redis.call('HSET', e[1], 'avg', string.format('%.3f', avg), 'n', math.min(e[3] + 1, 1000000000))
      redis.call('EXPIRE', e[1], tonumber(spec.a[5]))
    end
  end
end

redis.call('SET', KEYS[4], int(m_tat), 'PX', int(math.floor((m_tat - now) / 1000) + 1000))
if c_tat and decision ~= 'REJECT' then
  redis.call('SET', KEYS[4 + chosen], int(c_tat), 'PX', int(math.floor((c_tat - now) / 1000) + 1000))
end
local pid = A[7]
-- The chosen channel and the final risk verdict, then the payment's own fields (unpack last:
-- only a last argument expands to all of its values). A REVIEW is held, not sent: no
-- reconciler looks at it until an operator approves it.
local held = decision == 'REVIEW'
redis.call('HSET', KEYS[2], 'channel', A[6 + chosen * 3], 'rdec', decision, 'rrule', rule,
  'rscore', int(score), 'rrev', held and 'HELD' or '', unpack(A[9 + n * 3]))
redis.call('EXPIRE', KEYS[2], A[3])
redis.call('HSET', KEYS[1], 'fp', A[1], 'state', 'running', 'pid', pid, 't', int(now_ms))
redis.call('EXPIRE', KEYS[1], A[2])
if held then
  redis.call('ZADD', KEYS[5 + n], int(now_ms), pid)
else
  redis.call('ZADD', KEYS[3], int(now_ms + tonumber(A[4])), pid)
end
return {'new', chosen, decision, rule, score}

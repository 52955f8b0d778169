-- Record an operation's outcome: the payment, the idempotent response, the journal entry and
-- the pending schedule, in one round trip. Refuses (returns {0, version}) when the payment's
-- version is not the one the caller read, so two resolvers can never both apply an outcome.
--
-- KEYS[1] payment hash   KEYS[2] idempotency hash (or the payment key when there is none)
-- KEYS[3] journal stream   KEYS[4] pending zset
-- ARGV[1] one JSON array of the arguments (see switch/store.py): [1] expected version
-- [2] idempotency action: 'done', 'release' or 'none'   [3] payment TTL s   [4] journal max
-- length   [5] pending score ms ('' = remove from pending)   [6] payment id   [7] the payment's
-- fields and [8] the journal entry's fields, each an array name, value, name, value... (all
-- strings, numbers too: Redis formats a Lua number argument with snprintf, which costs more than
-- the command). An empty journal array writes no journal entry.
-- ARGV[2] the stored response (bytes, so not in the JSON).
local A = cjson.decode(ARGV[1])
local ver = redis.call('HGET', KEYS[1], 'ver')
if ver ~= A[1] then return {0, ver or ''} end

redis.call('HSET', KEYS[1], unpack(A[7]))
redis.call('EXPIRE', KEYS[1], A[3])

if A[2] == 'done' then
  -- Only a running key takes the response: a key already done keeps its first response.
  if redis.call('HGET', KEYS[2], 'state') == 'running' then
    redis.call('HSET', KEYS[2], 'state', 'done', 'resp', ARGV[2])
  end
elseif A[2] == 'release' then
  redis.call('DEL', KEYS[2])
end

if A[5] == '' then
  redis.call('ZREM', KEYS[4], A[6])
else
  redis.call('ZADD', KEYS[4], A[5], A[6])
end

local entry = A[8]
if #entry > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', A[4], '*', unpack(entry))
end
return {1, ''}

-- Record an operation's outcome: the payment, the idempotent response, the journal entry and
-- the pending schedule, in one round trip. Refuses (returns {0, version}) when the payment's
-- version is not the one the caller read, so two resolvers can never both apply an outcome.
--
-- KEYS[1] payment hash   KEYS[2] idempotency hash (or the payment key when there is none)
-- KEYS[3] journal stream   KEYS[4] pending zset
-- ARGV[1] expected version   ARGV[2] idempotency action: 'done', 'release' or 'none'
-- ARGV[3] stored response   ARGV[4] payment TTL s   ARGV[5] journal max length
-- ARGV[6] pending score ms (-1 = remove from pending)   ARGV[7] payment id
-- ARGV[8] the payment's fields, ARGV[9] the journal entry's fields: each a JSON object of
-- name: value (all strings), so a call is nine arguments, not sixty. An empty
-- journal object writes no journal entry.
-- A JSON object of name: value strings as HSET's or XADD's name, value, name, value... (the
-- switch sends objects: flattening them here costs Redis less than it cost the switch).
local function flat(json)
  local out = {}
  for k, v in pairs(cjson.decode(json)) do
    out[#out + 1] = k
    out[#out + 1] = v
  end
  return out
end

local ver = redis.call('HGET', KEYS[1], 'ver')
if ver ~= ARGV[1] then return {0, ver or ''} end

redis.call('HSET', KEYS[1], unpack(flat(ARGV[8])))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))

if ARGV[2] == 'done' then
  -- Only a running key takes the response: a key already done keeps its first response.
  if redis.call('HGET', KEYS[2], 'state') == 'running' then
    redis.call('HSET', KEYS[2], 'state', 'done', 'resp', ARGV[3])
  end
elseif ARGV[2] == 'release' then
  redis.call('DEL', KEYS[2])
end

if tonumber(ARGV[6]) < 0 then
  redis.call('ZREM', KEYS[4], ARGV[7])
else
  redis.call('ZADD', KEYS[4], tonumber(ARGV[6]), ARGV[7])
end

local entry = flat(ARGV[9])
if #entry > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', tonumber(ARGV[5]), '*', unpack(entry))
end
return {1, ''}

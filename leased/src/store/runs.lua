-- The run semantics of RunBook (leased/src/store/runs.rs), run atomically inside Redis so that
-- leased daemons sharing one Redis record every run once and queue its events in one order.
--
-- KEYS[1] = key prefix. ARGV[1] = operation, ARGV[2] = now (Unix ms); the operation's own
-- arguments follow from ARGV[3]. The caller builds what needs no stored data (a new run, the
-- State event with its fresh transition id) as JSON; the script only decodes stored runs.
--
-- Keys: run:<id> (run JSON), runs (zset id -> created_at_ms), runs:open (set of unfinished run
-- ids), outbox (zset seq -> seq), outbox:entries (hash seq -> entry JSON), outbox:seq (counter),
-- outbox:claim (JSON {owner, until}, expiring with the claim).
--
-- Replies: {'ok', ...} or {'err', code, arg, ...}.

local P = KEYS[1]
local op = ARGV[1]
local now = tonumber(ARGV[2])

local RUNS = P .. 'runs'
local OPEN = P .. 'runs:open'
local OUTBOX = P .. 'outbox'
local ENTRIES = P .. 'outbox:entries'

local function run_key(id)
  return P .. 'run:' .. id
end

local function terminal(state)
  return state ~= 'pending' and state ~= 'running'
end

-- cjson writes an empty table as an object; a run's lists must stay lists.
local function encode_run(r)
  local s = cjson.encode(r)
  s = string.gsub(s, '"args":{}', '"args":[]')
  s = string.gsub(s, '"cases":{}', '"cases":[]')
  return s
end

-- Appends an event (JSON) of run `id` to the outbox.
local function push(id, event)
  local seq = redis.call('INCR', P .. 'outbox:seq')
  local entry = '{"seq":' .. seq .. ',"run_id":' .. cjson.encode(id) .. ',"event":' .. event .. '}'
  redis.call('ZADD', OUTBOX, seq, seq)
  redis.call('HSET', ENTRIES, seq, entry)
end

-- Forgets the oldest ended runs while more than `keep` are kept.
local function retain(keep)
  local count = redis.call('ZCARD', RUNS)
  local skipped = 0
  while count > keep do
    local batch = redis.call('ZRANGE', RUNS, skipped, skipped + 63)
    if #batch == 0 then
      return
    end
    for _, id in ipairs(batch) do
      if count <= keep then
        return
      end
      if redis.call('SISMEMBER', OPEN, id) == 1 then
        skipped = skipped + 1
      else
        redis.call('DEL', run_key(id))
        redis.call('ZREM', RUNS, id)
        count = count - 1
      end
    end
  end
end

if op == 'run_start' then
  -- id, keep, run JSON (as started), Create event JSON
  local id, keep, run, event = ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6]
  local known = redis.call('GET', run_key(id))
  if known then
    return { 'ok', known, 0 }
  end
  redis.call('SET', run_key(id), run)
  redis.call('ZADD', RUNS, now, id)
  redis.call('SADD', OPEN, id)
  push(id, event)
  retain(keep)
  return { 'ok', run, 1 }
end

if op == 'run_update' then
  -- id, RunUpdate JSON, State event JSON
  local id, update, event = ARGV[3], cjson.decode(ARGV[4]), ARGV[5]
  local stored = redis.call('GET', run_key(id))
  if not stored then
    return { 'err', 'unknown_run', id }
  end
  local r = cjson.decode(stored)
  local from, to = r.state, update.state
  if from == to then
    return { 'ok', stored }
  end
  if not (from == 'pending' or (from == 'running' and terminal(to))) then
    return { 'err', 'run_transition', id, from, to }
  end
  r.state = to
  if to == 'running' then
    r.started_at_ms = now
  else
    r.ended_at_ms = now
    r.exit_code = update.exit_code
    r.socv_exit_code = update.socv_exit_code
    r.cases = update.cases or {}
    if update.message then
      r.message = update.message
    end
    if update.board_id then
      r.board_id = update.board_id
    end
    redis.call('SREM', OPEN, id)
  end
  local json = encode_run(r)
  redis.call('SET', run_key(id), json)
  push(id, event)
  if terminal(to) then
    push(id, '{"kind":"artifacts","run":' .. json .. '}')
  end
  return { 'ok', json }
end

if op == 'run_logs' then
  -- id, number of lines, Logs event JSON
  local id, count, event = ARGV[3], tonumber(ARGV[4]), ARGV[5]
  local stored = redis.call('GET', run_key(id))
  if not stored then
    return { 'err', 'unknown_run', id }
  end
  if count == 0 then
    return { 'ok', stored }
  end
  local r = cjson.decode(stored)
  r.log_lines = (r.log_lines or 0) + count
  local json = encode_run(r)
  redis.call('SET', run_key(id), json)
  push(id, event)
  return { 'ok', json }
end

if op == 'run' then
  local stored = redis.call('GET', run_key(ARGV[3]))
  if stored then
    return { 'ok', stored }
  end
  return { 'none' }
end

if op == 'runs' then
  -- board, family, holder, state ('' = any), since (ms), limit
  local board, family, holder, state = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
  local since, limit = tonumber(ARGV[7]), tonumber(ARGV[8])
  local out = {}
  local offset = 0
  while #out < limit do
    local ids = redis.call('ZREVRANGEBYSCORE', RUNS, '+inf', since, 'LIMIT', offset, 64)
    if #ids == 0 then
      break
    end
    offset = offset + #ids
    for _, id in ipairs(ids) do
      local stored = redis.call('GET', run_key(id))
      if stored then
        local r = cjson.decode(stored)
        if (board == '' or r.board_id == board) and (family == '' or r.family == family)
          and (holder == '' or r.holder == holder) and (state == '' or r.state == state) then
          out[#out + 1] = stored
          if #out >= limit then
            break
          end
        end
      end
    end
  end
  return { 'ok', out }
end

if op == 'unfinished_runs' then
  local out = {}
  for _, id in ipairs(redis.call('SMEMBERS', OPEN)) do
    local stored = redis.call('GET', run_key(id))
    if stored then
      out[#out + 1] = stored
    end
  end
  return { 'ok', out }
end

if op == 'set_flow_run_id' then
  local id, flow_run_id = ARGV[3], ARGV[4]
  local stored = redis.call('GET', run_key(id))
  if stored then
    local r = cjson.decode(stored)
    r.prefect = r.prefect or {}
    r.prefect.flow_run_id = flow_run_id
    redis.call('SET', run_key(id), encode_run(r))
  end
  return { 'ok' }
end

if op == 'outbox_peek' then
  local limit = tonumber(ARGV[3])
  if limit <= 0 then
    return { 'ok', {} }
  end
  local seqs = redis.call('ZRANGE', OUTBOX, 0, limit - 1)
  if #seqs == 0 then
    return { 'ok', {} }
  end
  return { 'ok', redis.call('HMGET', ENTRIES, unpack(seqs)) }
end

if op == 'outbox_ack' then
  for i = 3, #ARGV do
    redis.call('ZREM', OUTBOX, ARGV[i])
    redis.call('HDEL', ENTRIES, ARGV[i])
  end
  return { 'ok' }
end

if op == 'outbox_len' then
  return { 'ok', redis.call('ZCARD', OUTBOX) }
end

if op == 'outbox_claim' then
  -- owner, ttl (ms)
  local owner, ttl = ARGV[3], tonumber(ARGV[4])
  local key = P .. 'outbox:claim'
  local held = redis.call('GET', key)
  if held then
    local c = cjson.decode(held)
    if c.owner ~= owner and c['until'] > now then
      return { 'ok', 0 }
    end
  end
  redis.call('SET', key, cjson.encode({ owner = owner, ['until'] = now + ttl }), 'PX',
    math.max(ttl, 1))
  return { 'ok', 1 }
end

return { 'err', 'unknown_op', op }

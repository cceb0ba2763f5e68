-- The lease semantics of leased/src/store/lease_book.rs, run atomically inside Redis so that any
-- number of leased daemons sharing one Redis never grant one board twice.
--
-- KEYS[1] = key prefix. ARGV[1] = operation, ARGV[2] = now (Unix ms), ARGV[3] = a random salt
-- for new ids, ARGV[4] = how long ended leases are remembered (ms); the operation's own
-- arguments follow from ARGV[5].
--
-- Keys: seq (counter for tickets and grants), boards (set of listed boards), fam:<f> (set),
-- b:<id> (hash), l:<id> (lease JSON), exp (zset lease -> expiry), t:<id> (ticket JSON),
-- q (zset of waiting tickets, score priority*1e12+seq), tdl (zset ticket -> lapse deadline).
-- Grants are published on the channel <prefix>grants.
--
-- Replies: {'ok', ...}, {'granted', lease}, {'queued'|'waiting', ticket, position}, or
-- {'err', code, arg, arg2}.

local P = KEYS[1]
local op = ARGV[1]
local now = tonumber(ARGV[2])
local salt = ARGV[3]
local ENDED_MEMORY_MS = tonumber(ARGV[4])

local function next_seq()
  return redis.call('INCR', P .. 'seq')
end

local function new_id(prefix, seq)
  return prefix .. '-' .. salt .. string.format('%06x', seq)
end

local function board(id)
  local flat = redis.call('HGETALL', P .. 'b:' .. id)
  if #flat == 0 then
    return nil
  end
  local b = { id = id }
  for i = 1, #flat, 2 do
    b[flat[i]] = flat[i + 1]
  end
  return b
end

local function grantable(b)
  return b.present == '1' and (b.lease == nil or b.lease == '') and b.unhealthy ~= '1'
    and b.drained ~= '1'
end

-- free:<family> and free:<family>\0<location>: zsets of the grantable boards, scored by
-- last_used, so that acquire picks the least recently used (then lowest id) in O(log n).
local function free_keys(family, location)
  return P .. 'free:' .. family, P .. 'free:' .. family .. '\0' .. (location or '')
end

local function refresh_free(b)
  local all, here = free_keys(b.family, b.location)
  if grantable(b) then
    local score = tonumber(b.last_used) or 0
    redis.call('ZADD', all, score, b.id)
    redis.call('ZADD', here, score, b.id)
  else
    redis.call('ZREM', all, b.id)
    redis.call('ZREM', here, b.id)
  end
end

local function serviceable(b)
  return b.present == '1' and b.unhealthy ~= '1' and b.drained ~= '1'
end

local function get_json(key)
  local s = redis.call('GET', key)
  if s then
    return cjson.decode(s)
  end
  return nil
end

local function get_lease(id)
  return get_json(P .. 'l:' .. id)
end

local function put_lease(l)
  if l.ended then
    redis.call('SET', P .. 'l:' .. l.id, cjson.encode(l), 'PX', ENDED_MEMORY_MS)
  else
    redis.call('SET', P .. 'l:' .. l.id, cjson.encode(l))
  end
end

local function get_ticket(id)
  return get_json(P .. 't:' .. id)
end

local function put_ticket(t)
  redis.call('SET', P .. 't:' .. t.id, cjson.encode(t))
  local deadline = t.poll_by
  if t.give_up_at and t.give_up_at < deadline then
    deadline = t.give_up_at
  end
  redis.call('ZADD', P .. 'tdl', deadline, t.id)
end

local function remove_ticket(id)
  redis.call('DEL', P .. 't:' .. id)
  redis.call('ZREM', P .. 'q', id)
  redis.call('ZREM', P .. 'tdl', id)
end

local function live(t)
  return t.poll_by > now and (t.give_up_at == nil or t.give_up_at > now)
end

local function queue_score(t)
  return t.priority * 1e12 + t.seq
end

-- Ends an active lease; returns the board it freed, if any.
local function end_lease(id, how)
  local l = get_lease(id)
  if not l or l.ended then
    return nil
  end
  l.ended = how
  if l.expires_at > now then
    l.expires_at = now
  end
  put_lease(l)
  redis.call('ZREM', P .. 'exp', id)
  local key = P .. 'b:' .. l.board_id
  if redis.call('HGET', key, 'lease') == id then
    redis.call('HSET', key, 'lease', '', 'last_used', now)
    refresh_free(board(l.board_id))
    return l.board_id
  end
  return nil
end

local function grant(b, holder, priority, ttl)
  local seq = next_seq()
  local l = {
    id = new_id('l', seq), board_id = b.id, family = b.family, location = b.location,
    holder = holder, priority = priority, granted_at = now, expires_at = now + ttl,
    ttl_ms = ttl, grant_seq = seq,
  }
  put_lease(l)
  redis.call('ZADD', P .. 'exp', l.expires_at, l.id)
  redis.call('HSET', P .. 'b:' .. b.id, 'lease', l.id, 'last_used', now)
  local all, here = free_keys(b.family, b.location)
  redis.call('ZREM', all, b.id)
  redis.call('ZREM', here, b.id)
  return l
end

-- Gives a grantable board to the first live waiter that matches it.
local function dispatch(bid)
  local b = board(bid)
  if not b or not grantable(b) then
    return
  end
  local ids = redis.call('ZRANGE', P .. 'q', 0, -1)
  for _, tid in ipairs(ids) do
    local t = get_ticket(tid)
    if not t then
      redis.call('ZREM', P .. 'q', tid)
    elseif not live(t) then
      remove_ticket(tid)
    else
      local matches
      if t.board_id then
        matches = t.board_id == bid
      else
        matches = t.family == b.family
      end
      if matches then
        local l = grant(b, t.holder, t.priority, t.ttl_ms)
        t.lease_id = l.id
        redis.call('ZREM', P .. 'q', tid)
        put_ticket(t)
        redis.call('PUBLISH', P .. 'grants', tid)
        return
      end
    end
  end
end

local function reap()
  local expired, lapsed, freed = {}, {}, {}
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'exp', '-inf', now)) do
    local bid = end_lease(id, 'expired')
    table.insert(expired, id)
    if bid then
      table.insert(freed, bid)
    end
  end
  for _, tid in ipairs(redis.call('ZRANGEBYSCORE', P .. 'tdl', '-inf', now)) do
    local t = get_ticket(tid)
    remove_ticket(tid)
    if t then
      if not t.lease_id then
        table.insert(lapsed, tid)
      elseif not t.claimed then
        local bid = end_lease(t.lease_id, 'abandoned')
        if bid then
          table.insert(freed, bid)
        end
        table.insert(lapsed, tid)
      end
    end
  end
  table.sort(freed)
  for _, bid in ipairs(freed) do
    dispatch(bid)
  end
  return expired, lapsed
end

local function position(t)
  local ids = redis.call('ZRANGEBYSCORE', P .. 'q', '-inf', '(' .. string.format('%.0f', queue_score(t)))
  local n = 0
  for _, id in ipairs(ids) do
    local o = get_ticket(id)
    if o and o.family == t.family and live(o) then
      n = n + 1
    end
  end
  return n + 1
end

local function board_json(b)
  local view = {
    id = b.id, family = b.family, location = b.location,
    unhealthy = b.unhealthy == '1', drained = b.drained == '1',
    failures = tonumber(b.failures) or 0,
  }
  if b.lease and b.lease ~= '' then
    view.lease = get_lease(b.lease)
  end
  if b.drain_reason and b.drain_reason ~= '' then
    view.drain_reason = b.drain_reason
  end
  if b.last_used and b.last_used ~= '' then
    view.last_used = tonumber(b.last_used)
  end
  return cjson.encode(view)
end

local function present_board(id)
  local b = board(id)
  if not b or b.present ~= '1' then
    return nil
  end
  return b
end

local function active_lease(id)
  local l = get_lease(id)
  if not l then
    return nil, { 'err', 'unknown_lease', id }
  end
  if l.ended then
    return nil, { 'err', 'lease_ended', id, l.ended }
  end
  return l
end

-- Operations ------------------------------------------------------------------------------

if op == 'sync_boards' then
  local n = tonumber(ARGV[5])
  local listed = {}
  for i = 0, n - 1 do
    listed[ARGV[6 + i * 3]] = true
  end
  for _, id in ipairs(redis.call('SMEMBERS', P .. 'boards')) do
    if not listed[id] then
      local fam = redis.call('HGET', P .. 'b:' .. id, 'family')
      local old = board(id)
      if old then
        old.present = '0'
        refresh_free(old)
      end
      redis.call('HSET', P .. 'b:' .. id, 'present', '0')
      redis.call('SREM', P .. 'boards', id)
      if fam then
        redis.call('SREM', P .. 'fam:' .. fam, id)
      end
    end
  end
  local ids = {}
  for i = 0, n - 1 do
    local id, fam, loc = ARGV[6 + i * 3], ARGV[7 + i * 3], ARGV[8 + i * 3]
    local key = P .. 'b:' .. id
    local old = redis.call('HGET', key, 'family')
    if old and old ~= fam then
      redis.call('SREM', P .. 'fam:' .. old, id)
    end
    local before = board(id)
    if before then
      before.present = '0'
      refresh_free(before)
    end
    if old then
      redis.call('HSET', key, 'family', fam, 'location', loc, 'present', '1')
    else
      redis.call('HSET', key, 'family', fam, 'location', loc, 'present', '1', 'lease', '',
        'unhealthy', '0', 'failures', '0', 'drained', '0')
    end
    redis.call('SADD', P .. 'boards', id)
    redis.call('SADD', P .. 'fam:' .. fam, id)
    refresh_free(board(id))
    table.insert(ids, id)
  end
  reap()
  for _, id in ipairs(ids) do
    dispatch(id)
  end
  return { 'ok' }
end

if op == 'reap' then
  local expired, lapsed = reap()
  return { 'ok', expired, lapsed }
end

reap()

if op == 'counts' then
  return { 'ok', redis.call('SCARD', P .. 'boards'), redis.call('ZCARD', P .. 'exp'),
    redis.call('ZCARD', P .. 'q') }
end

if op == 'ticket' then
  local s = redis.call('GET', P .. 't:' .. ARGV[5])
  if s then
    return { 'ok', s }
  end
  return { 'none' }
end

if op == 'acquire' then
  local kind, name, location = ARGV[5], ARGV[6], ARGV[7]
  local priority, holder, ttl = tonumber(ARGV[8]), ARGV[9], tonumber(ARGV[10])
  local queue, lapse, give_up = ARGV[11] == '1', tonumber(ARGV[12]), tonumber(ARGV[13])
  local cands, family = {}, nil
  if kind == 'family' then
    local all, here = free_keys(name, location)
    local pick = nil
    if location ~= '' then
      pick = redis.call('ZRANGE', here, 0, 0)[1]
    end
    if not pick then
      pick = redis.call('ZRANGE', all, 0, 0)[1]
    end
    if pick then
      local b = board(pick)
      if b and grantable(b) and b.family == name then
        return { 'granted', cjson.encode(grant(b, holder, priority, ttl)) }
      end
    end
  end
  if kind == 'family' then
    for _, id in ipairs(redis.call('SMEMBERS', P .. 'fam:' .. name)) do
      local b = present_board(id)
      if b then
        table.insert(cands, b)
      end
    end
    if #cands == 0 then
      return { 'err', 'unknown_family', name }
    end
    family = name
  else
    local b = present_board(name)
    if not b then
      return { 'err', 'unknown_board', name }
    end
    cands = { b }
    family = b.family
  end
  local best, best_key = nil, nil
  for _, b in ipairs(cands) do
    if grantable(b) then
      local miss = 1
      if location ~= '' and b.location == location then
        miss = 0
      end
      local key = { miss, tonumber(b.last_used) or 0, b.id }
      if best == nil or key[1] < best_key[1]
        or (key[1] == best_key[1] and (key[2] < best_key[2]
          or (key[2] == best_key[2] and key[3] < best_key[3]))) then
        best, best_key = b, key
      end
    end
  end
  if best then
    return { 'granted', cjson.encode(grant(best, holder, priority, ttl)) }
  end
  local any = false
  for _, b in ipairs(cands) do
    if serviceable(b) then
      any = true
    end
  end
  if not any then
    return { 'err', 'no_healthy_board', name }
  end
  if not queue then
    return { 'err', 'none_free', name }
  end
  local seq = next_seq()
  local t = {
    id = new_id('q', seq), family = family, priority = priority, holder = holder,
    ttl_ms = ttl, seq = seq, lapse_ms = lapse, poll_by = now + lapse, give_up_at = give_up,
    claimed = false,
  }
  if kind == 'board' then
    t.board_id = name
  end
  if location ~= '' then
    t.location = location
  end
  redis.call('ZADD', P .. 'q', queue_score(t), t.id)
  put_ticket(t)
  return { 'queued', cjson.encode(t), position(t) }
end

if op == 'poll_ticket' then
  local t = get_ticket(ARGV[5])
  if not t then
    return { 'err', 'unknown_ticket', ARGV[5] }
  end
  t.poll_by = now + t.lapse_ms
  if t.lease_id then
    t.claimed = true
    put_ticket(t)
    local s = redis.call('GET', P .. 'l:' .. t.lease_id)
    if not s then
      return { 'err', 'unknown_lease', t.lease_id }
    end
    return { 'granted', s }
  end
  put_ticket(t)
  return { 'waiting', cjson.encode(t), position(t) }
end

if op == 'cancel_ticket' then
  local t = get_ticket(ARGV[5])
  if not t then
    return { 'err', 'unknown_ticket', ARGV[5] }
  end
  remove_ticket(t.id)
  if t.lease_id then
    local bid = end_lease(t.lease_id, 'released')
    if bid then
      dispatch(bid)
    end
  end
  return { 'ok' }
end

if op == 'lease' then
  local s = redis.call('GET', P .. 'l:' .. ARGV[5])
  if s then
    return { 'ok', s }
  end
  return { 'none' }
end

if op == 'renew' then
  local l, err = active_lease(ARGV[5])
  if not l then
    return err
  end
  local ttl = tonumber(ARGV[6])
  l.expires_at = now + ttl
  l.ttl_ms = ttl
  put_lease(l)
  redis.call('ZADD', P .. 'exp', l.expires_at, l.id)
  return { 'ok', cjson.encode(l) }
end

if op == 'release' then
  local holder = ARGV[6]
  if holder and holder ~= '' then
    local held = get_lease(ARGV[5])
    if held and held.holder ~= holder then
      return { 'err', 'not_holder', ARGV[5], held.holder }
    end
  end
  local l, err = active_lease(ARGV[5])
  if not l then
    return err
  end
  local bid = end_lease(l.id, 'released')
  if bid then
    dispatch(bid)
  end
  return { 'ok', redis.call('GET', P .. 'l:' .. l.id) }
end

if op == 'leases' then
  local out = {}
  for _, id in ipairs(redis.call('ZRANGE', P .. 'exp', 0, -1)) do
    local s = redis.call('GET', P .. 'l:' .. id)
    if s then
      table.insert(out, s)
    end
  end
  return { 'ok', out }
end

if op == 'boards' then
  local out = {}
  for _, id in ipairs(redis.call('SMEMBERS', P .. 'boards')) do
    local b = board(id)
    if b then
      table.insert(out, board_json(b))
    end
  end
  return { 'ok', out }
end

if op == 'set_drain' then
  local b = present_board(ARGV[5])
  if not b then
    return { 'err', 'unknown_board', ARGV[5] }
  end
  if ARGV[6] == '1' then
    redis.call('HSET', P .. 'b:' .. b.id, 'drained', '1', 'drain_reason', ARGV[7])
    refresh_free(board(b.id))
  else
    redis.call('HSET', P .. 'b:' .. b.id, 'drained', '0', 'drain_reason', '')
    refresh_free(board(b.id))
    dispatch(b.id)
  end
  return { 'ok', board_json(board(b.id)) }
end

if op == 'report_health' then
  local b = present_board(ARGV[5])
  if not b then
    return { 'err', 'unknown_board', ARGV[5] }
  end
  local key = P .. 'b:' .. b.id
  if ARGV[6] == '1' then
    redis.call('HSET', key, 'failures', '0', 'unhealthy', '0')
    refresh_free(board(b.id))
    dispatch(b.id)
  else
    local failures = redis.call('HINCRBY', key, 'failures', 1)
    local threshold = math.max(tonumber(ARGV[7]), 1)
    if failures >= threshold then
      redis.call('HSET', key, 'unhealthy', '1')
      refresh_free(board(b.id))
    end
  end
  return { 'ok', board_json(board(b.id)) }
end

return { 'err', 'unknown_op', op }

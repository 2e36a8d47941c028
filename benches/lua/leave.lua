-- VIOLET.LEAVE NS SOCKET written as a Lua script, for the benchmark only: the
-- same reads, checks, writes and events as the module's rules, in the same
-- order.
-- ARGV: namespace, socket.
local prefix = 'violet:{' .. ARGV[1] .. '}:'
local socket = ARGV[2]
local ranking, nodes, events = prefix .. 'rooms', prefix .. 'nodes', prefix .. 'events'
local node = string.match(socket, '^[^:]*')
local sockets = prefix .. 'node:' .. node

local room = redis.call('HGET', sockets, socket)
if not room then
  return false
end
local room_key = prefix .. 'room:' .. room
local members = room_key .. ':members'
local public = redis.call('HGET', room_key, 'visibility') == 'public'
local viewers = redis.call('SCARD', members)
redis.call('ZCARD', ranking)
redis.call('ZCARD', nodes)

local removed = redis.call('SREM', members, socket)
redis.call('HDEL', sockets, socket)
if redis.call('HLEN', sockets) == 0 then
  local score = redis.call('ZSCORE', nodes, node)
  if score == 'inf' then
    redis.call('ZREM', nodes, node)
  end
end
local left = viewers - removed
redis.call('PUBLISH', events, cjson.encode({ event = 'left', room = room, socket = socket, viewers = left, reason = 'left' }))
if left == 0 then
  redis.call('DEL', room_key, members)
  redis.call('ZREM', ranking, room)
  redis.call('PUBLISH', events, cjson.encode({ event = 'destroyed', room = room }))
elseif public then
  redis.call('ZADD', ranking, left, room)
end
return room

-- VIOLET.CREATE NS SOCKET ROOM (a named room, no details) written as a Lua
-- script, for the benchmark only: the same reads, checks, writes and events
-- as the module's rules, in the same order.
-- ARGV: namespace, socket, room.
local prefix = 'violet:{' .. ARGV[1] .. '}:'
local socket, room = ARGV[2], ARGV[3]
local ranking, nodes, events = prefix .. 'rooms', prefix .. 'nodes', prefix .. 'events'
local node = string.match(socket, '^[^:]*')
local sockets = prefix .. 'node:' .. node
local room_key = prefix .. 'room:' .. room
local members = room_key .. ':members'

if redis.call('EXISTS', room_key) == 1 or redis.call('EXISTS', members) == 1 then
  return redis.error_reply('EXISTS room "' .. room .. '" exists')
end
local previous = redis.call('HGET', sockets, socket)
local previous_key, previous_members, previous_public, previous_viewers
if previous then
  previous_key = prefix .. 'room:' .. previous
  previous_members = previous_key .. ':members'
  previous_public = redis.call('HGET', previous_key, 'visibility') == 'public'
  previous_viewers = redis.call('SCARD', previous_members)
end
local first_of_node = not previous and redis.call('HLEN', sockets) == 0
if first_of_node then
  redis.call('ZCARD', nodes)
end
redis.call('ZCARD', ranking)

if previous then
  local removed = redis.call('SREM', previous_members, socket)
  local left = previous_viewers - removed
  redis.call('PUBLISH', events, cjson.encode({ event = 'left', room = previous, socket = socket, viewers = left, reason = 'left' }))
  if left == 0 then
    redis.call('DEL', previous_key, previous_members)
    redis.call('ZREM', ranking, previous)
    redis.call('PUBLISH', events, cjson.encode({ event = 'destroyed', room = previous }))
  elseif previous_public then
    redis.call('ZADD', ranking, left, previous)
  end
end
redis.call('HSET', room_key, 'owner', socket, 'visibility', 'public')
redis.call('SADD', members, socket)
redis.call('HSET', sockets, socket, room)
if first_of_node then
  redis.call('ZADD', nodes, 'NX', '+inf', node)
end
redis.call('ZADD', ranking, 1, room)
redis.call('PUBLISH', events, cjson.encode({ event = 'created', room = room, socket = socket, viewers = 1, visibility = 'public' }))
return room

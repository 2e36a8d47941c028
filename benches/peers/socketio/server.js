// The Socket.IO peer of Violet's shim, for `cargo bench --bench load`: the
// same job with the tools a Node developer would pick (socket.io and its
// Redis adapter). A `join` moves the socket out of its room into another,
// keeps each room's viewers in a Redis Set (one MULTI: SREM, SADD, SCARD,
// SCARD), pushes `member-left` to the old room (the leaver included) and
// `member-joined` to the new one (the joiner included) through the adapter,
// and acknowledges with the viewer count. `leave` and `room-message` do the
// rest of what the shim does; a disconnected socket leaves its room.
//
// PORT and REDIS_URL come from the environment.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const port = Number(process.env.PORT || 3000);
const url = process.env.REDIS_URL || "redis://127.0.0.1:6379";
const members = (room) => `peer:{watch-party}:room:${room}:members`;

async function main() {
  const pub = createClient({ url });
  const sub = pub.duplicate();
  const data = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect(), data.connect()]);

  const server = http.createServer();
  const io = new Server(server, {
    adapter: createAdapter(pub, sub),
    transports: ["websocket"],
    serveClient: false,
  });

  async function leave(socket) {
    const room = socket.data.room;
    if (room === undefined) return null;
    socket.data.room = undefined;
    const [, viewers] = await data
      .multi()
      .sRem(members(room), socket.id)
      .sCard(members(room))
      .exec();
    io.to(room).emit("member-left", { room_id: room, socket_id: socket.id, viewers, reason: "left" });
    socket.leave(room);
    return room;
  }

  io.on("connection", (socket) => {
    socket.on("join", async (room, ack) => {
      if (typeof room !== "string" || typeof ack !== "function") return;
      const prev = socket.data.room;
      if (prev === room) {
        const viewers = await data.sCard(members(room));
        ack({ room_id: room, prev_room_id: prev, viewers });
        return;
      }
      const tx = data.multi();
      if (prev !== undefined) tx.sRem(members(prev), socket.id);
      tx.sAdd(members(room), socket.id).sCard(members(room));
      if (prev !== undefined) tx.sCard(members(prev));
      const replies = await tx.exec();
      socket.data.room = room;
      if (prev !== undefined) {
        const left = replies[3];
        io.to(prev).emit("member-left", { room_id: prev, socket_id: socket.id, viewers: left, reason: "left" });
        socket.leave(prev);
      }
      const viewers = prev !== undefined ? replies[2] : replies[1];
      socket.join(room);
      io.to(room).emit("member-joined", { room_id: room, socket_id: socket.id, viewers });
      ack({ room_id: room, prev_room_id: prev ?? null, viewers });
    });

    socket.on("leave", async (ack) => {
      const room = await leave(socket);
      if (typeof ack === "function") ack({ room_id: room });
    });

    socket.on("room-message", (message, ack) => {
      const room = socket.data.room;
      if (typeof ack !== "function") return;
      if (room === undefined) {
        ack({ error: "NOTINROOM" });
        return;
      }
      io.to(room).emit("message", { room_id: room, socket_id: socket.id, data: message });
      ack({ room_id: room });
    });

    socket.on("disconnect", () => {
      leave(socket).catch(() => {});
    });
  });

  server.listen(port, "127.0.0.1", () => {
    console.log(`socket.io peer listening on ${port}`);
  });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});

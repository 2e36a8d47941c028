// The lobby page: live public rooms, creating and joining rooms, and the room
// the page is in (viewers, members, messages).

import { VioletClient, VioletError } from './client.js';
import {
  appendMessage,
  field,
  plural,
  renderMembers,
  renderRoomList,
  renderThumb,
  roomTitle,
} from './lobby.js';

const TOP_COUNT = 20;

// The event the original page's button sent, kept as it was.
const ORIGINAL_ROOM_CREATED = Object.freeze({
  kind: 'room-created',
  socket_id: 'Socket:1',
  details: {
    thumbnail: 'url://thumbnail',
    title: 'Perfect Blue',
    topic: 'Satoshi Kon clips',
    watchers: '2',
    visibility: 'Public',
  },
});

const ERROR_TEXT = {
  NOROOM: 'That room does not exist (any more).',
  FULL: 'That room is full.',
  EXISTS: 'A room with that id already exists.',
  NOTINROOM: 'You are not in a room.',
  RATE_LIMITED: 'Slow down: too many requests. Try again in a moment.',
  UNAVAILABLE: 'The server is unavailable right now. Try again in a moment.',
  DISCONNECTED: 'Not connected to the server. Reconnecting…',
  TIMEOUT: 'The server did not answer in time.',
};

const $ = (id) => document.getElementById(id);

const ui = {
  status: document.querySelector('[data-testid="status"]'),
  statusText: document.querySelector('.status-text'),
  retryNow: $('retry-now'),
  whoami: document.querySelector('[data-testid="socket-id-line"]'),
  socketId: $('socket-id'),
  notice: $('notice'),
  noticeText: document.querySelector('#notice .notice-text'),
  noticeClose: document.querySelector('#notice .notice-close'),
  roomList: $('room-list'),
  roomsEmpty: $('rooms-empty'),
  roomsSummary: $('rooms-summary'),
  roomView: $('room-view'),
  roomThumb: $('room-thumb'),
  roomVisibility: $('room-visibility'),
  roomId: $('room-id'),
  copyRoomId: $('copy-room-id'),
  roomTitle: $('room-title'),
  roomTopic: $('room-topic'),
  roomOwner: $('room-owner'),
  roomCapacityFact: $('room-capacity-fact'),
  roomCapacity: $('room-capacity'),
  viewerCount: $('viewer-count'),
  viewerUnit: $('viewer-unit'),
  memberList: $('member-list'),
  messageLog: $('message-log'),
  messagesEmpty: $('messages-empty'),
  messageForm: $('message-form'),
  messageInput: $('message-input'),
  leave: $('leave-button'),
  createForm: $('create-form'),
  legacyCreate: $('legacy-create'),
  joinForm: $('join-form'),
  joinInput: $('join-room-id'),
};

const state = {
  selfId: null,
  rooms: [],
  topLoaded: false,
  /** The room the page is in: {room_id, viewers, details, members: Set}. */
  room: null,
  /** Bumped on every room change, to drop replies about an older room. */
  roomSeq: 0,
  /** Requests that may put the page in a room and have not been answered. */
  entering: 0,
  /** Pushes for a room the page is about to enter, replayed once it has. */
  early: [],
  /** The original button's event went out (it carries no ref). */
  legacyPending: 0,
  /** The room a Leave request is under way for. */
  leaving: null,
};

const client = new VioletClient();

// ---- connection -------------------------------------------------------------

client.addEventListener('status', (event) => {
  const { state: s, retryInMs } = event.detail;
  ui.status.dataset.state = s;
  let text;
  if (s === 'open') text = 'Connected';
  else if (s === 'connecting') text = 'Connecting…';
  else if (s === 'waiting') text = `Offline · retrying in ${Math.max(1, Math.round(retryInMs / 1000))} s`;
  else text = 'Disconnected';
  ui.statusText.textContent = text;
  ui.retryNow.hidden = s !== 'waiting';
  const online = s === 'open';
  document.body.classList.toggle('is-offline', !online);
  for (const button of document.querySelectorAll('[data-needs-connection]')) button.disabled = !online;
  if (!online) {
    ui.whoami.hidden = true;
    state.entering = 0;
    state.legacyPending = 0;
    state.early = [];
  }
});

client.addEventListener('welcome', async (event) => {
  const { socket_id: socketId, reconnected } = event.detail;
  state.selfId = socketId;
  ui.socketId.textContent = socketId || '';
  ui.whoami.hidden = !socketId;
  hideNotice();
  watchTop();
  if (reconnected && state.room) {
    // The server forgot the old socket: take this one back into the room.
    const roomId = state.room.room_id;
    try {
      await joinRoom(roomId, { quiet: true });
    } catch (err) {
      if (state.room && state.room.room_id === roomId) exitRoom();
      showNotice(`You were disconnected and could not rejoin ${roomId}: ${errorText(err)}`);
    }
  } else if (!reconnected) {
    const fromHash = roomIdFromHash();
    if (fromHash) joinRoom(fromHash).catch(() => history.replaceState(null, '', location.pathname + location.search));
  }
});

client.addEventListener('message', (event) => handleFrame(event.detail));

ui.retryNow.addEventListener('click', () => client.retryNow());

async function watchTop() {
  try {
    await client.request({ kind: 'watch-top', count: TOP_COUNT });
  } catch (err) {
    if (err.code !== 'DISCONNECTED') showNotice(`Could not load the live rooms: ${errorText(err)}`);
  }
}

// ---- frames from the server -------------------------------------------------

function handleFrame(msg) {
  switch (msg.kind) {
    case 'top':
      if (Array.isArray(msg.rooms)) {
        state.rooms = msg.rooms.filter((r) => r && typeof r.room_id === 'string');
        state.topLoaded = true;
        renderLobby();
      }
      break;
    case 'room-created':
      // Replies with a ref are handled where the request was made; the
      // original button's event has none.
      if (msg.ref === undefined && state.legacyPending > 0 && typeof msg.room_id === 'string') {
        state.legacyPending -= 1;
        state.entering = Math.max(0, state.entering - 1);
        enterRoom(msg.room_id, 1, { ...ORIGINAL_ROOM_CREATED.details, owner: state.selfId });
        if (state.entering === 0) state.early = [];
      }
      break;
    case 'error':
      if ((msg.ref === undefined || msg.ref === null) && state.legacyPending > 0) {
        state.legacyPending -= 1;
        state.entering = Math.max(0, state.entering - 1);
      }
      if (msg.ref === undefined || msg.ref === null) showNotice(errorText(new VioletError(msg.code, msg.message)));
      break;
    case 'member-left':
      if (lostMyRoom(msg)) {
        rejoinLostRoom(msg.room_id);
        break;
      }
      roomPush(msg);
      break;
    case 'member-joined':
    case 'room-updated':
    case 'message':
      roomPush(msg);
      break;
    case 'room-destroyed':
      if (state.room && state.room.room_id === msg.room_id && state.leaving !== msg.room_id) {
        exitRoom();
        showNotice('This room has closed.');
      }
      break;
    default:
      // Replies are handled by their requests; unknown kinds are ignored.
      break;
  }
}

/**
 * Whether a push says this page's socket was taken out of its room without
 * asking: its server lost touch with Redis for too long (`expired`, `lost`)
 * or stopped (`released`).
 */
function lostMyRoom(msg) {
  return msg.socket_id === state.selfId
    && typeof msg.reason === 'string' && msg.reason !== 'left'
    && state.room !== null && state.room.room_id === msg.room_id
    && state.leaving !== msg.room_id;
}

/** Takes the socket back into a room it lost, or says why it cannot. */
async function rejoinLostRoom(roomId) {
  // Give the server a moment to take its lease back before joining again.
  await new Promise((resolve) => setTimeout(resolve, 500));
  if (!state.room || state.room.room_id !== roomId) return;
  try {
    await joinRoom(roomId, { quiet: true });
  } catch (err) {
    if (state.room && state.room.room_id === roomId) exitRoom();
    showNotice(err.code === 'NOROOM'
      ? 'The connection to the server was lost and this room has closed meanwhile.'
      : `The connection to the server was lost and the room could not be rejoined: ${errorText(err)}`);
  }
}

function roomPush(msg) {
  if (typeof msg.room_id !== 'string') return;
  if (state.room && state.room.room_id === msg.room_id) {
    applyPush(msg);
  } else if (state.entering > 0) {
    state.early.push(msg);
    if (state.early.length > 100) state.early.shift();
  }
}

function applyPush(msg) {
  const room = state.room;
  switch (msg.kind) {
    case 'member-joined':
      if (typeof msg.socket_id === 'string') room.members.add(msg.socket_id);
      setViewers(msg.viewers);
      renderMembers(ui.memberList, room.members, state.selfId);
      break;
    case 'member-left':
      if (typeof msg.socket_id === 'string') room.members.delete(msg.socket_id);
      setViewers(msg.viewers);
      renderMembers(ui.memberList, room.members, state.selfId);
      break;
    case 'room-updated':
      if (msg.details && typeof msg.details === 'object') {
        room.details = { ...room.details, ...msg.details };
        renderRoomDetails();
      }
      break;
    case 'message':
      ui.messagesEmpty.hidden = true;
      appendMessage(ui.messageLog, {
        socketId: String(msg.socket_id ?? ''),
        data: msg.data,
        self: msg.socket_id === state.selfId,
      });
      break;
    default:
      break;
  }
}

// ---- rooms ------------------------------------------------------------------

async function joinRoom(roomId, { quiet = false } = {}) {
  if (state.room && state.room.room_id === roomId && !quiet) {
    ui.messageInput.focus();
    return;
  }
  state.entering += 1;
  try {
    const reply = await client.request({ kind: 'room-joined', room_id: roomId });
    enterRoom(typeof reply.room_id === 'string' ? reply.room_id : roomId, reply.viewers, null, { keepLog: quiet });
  } finally {
    state.entering = Math.max(0, state.entering - 1);
    if (state.entering === 0) state.early = [];
  }
}

async function createRoom(details) {
  state.entering += 1;
  try {
    const reply = await client.request({ kind: 'room-created', details });
    enterRoom(reply.room_id, 1, { ...details, owner: state.selfId });
  } finally {
    state.entering = Math.max(0, state.entering - 1);
    if (state.entering === 0) state.early = [];
  }
}

function enterRoom(roomId, viewers, details, { keepLog = false } = {}) {
  const same = state.room && state.room.room_id === roomId;
  state.roomSeq += 1;
  const seq = state.roomSeq;
  state.room = {
    room_id: roomId,
    viewers: Number(viewers) || 1,
    details: details || (same ? state.room.details : {}),
    members: new Set(state.selfId ? [state.selfId] : []),
  };
  if (!same || !keepLog) {
    ui.messageLog.replaceChildren();
    ui.messagesEmpty.hidden = false;
  }
  history.replaceState(null, '', `#room=${encodeURIComponent(roomId)}`);
  ui.roomView.hidden = false;
  document.body.classList.add('in-room');
  renderRoomDetails();
  setViewers(state.room.viewers);
  renderMembers(ui.memberList, state.room.members, state.selfId);
  renderLobby();

  const early = state.early.filter((m) => m.room_id === roomId);
  state.early = state.early.filter((m) => m.room_id !== roomId);
  early.forEach(applyPush);

  refreshRoom(roomId, seq);
  if (!same) ui.roomView.scrollIntoView({ block: 'start', behavior: 'smooth' });
}

/** Asks for the room's details and members; drops answers about a room left since. */
async function refreshRoom(roomId, seq) {
  const current = () => state.room && state.room.room_id === roomId && state.roomSeq === seq;
  const [room, members] = await Promise.allSettled([
    client.request({ kind: 'room', room_id: roomId }),
    client.request({ kind: 'members', room_id: roomId }),
  ]);
  if (!current()) return;
  if (room.status === 'fulfilled' && room.value.room) {
    const r = room.value.room;
    if (r.details && typeof r.details === 'object') state.room.details = { ...r.details };
    renderRoomDetails();
  }
  if (members.status === 'fulfilled' && Array.isArray(members.value.members)) {
    state.room.members = new Set(members.value.members.filter((m) => typeof m === 'string'));
    setViewers(state.room.members.size);
    renderMembers(ui.memberList, state.room.members, state.selfId);
  } else if (room.status === 'fulfilled' && room.value.room) {
    setViewers(room.value.room.viewers);
  }
}

function exitRoom() {
  state.room = null;
  state.roomSeq += 1;
  ui.roomView.hidden = true;
  document.body.classList.remove('in-room');
  ui.messageLog.replaceChildren();
  ui.memberList.replaceChildren();
  history.replaceState(null, '', location.pathname + location.search);
  renderLobby();
}

function setViewers(value) {
  const n = Number(value);
  if (!state.room || !Number.isFinite(n) || n < 0) return;
  state.room.viewers = n;
  ui.viewerCount.textContent = String(n);
  ui.viewerUnit.textContent = plural(n, 'viewer', 'viewers');
}

function renderRoomDetails() {
  const room = state.room;
  if (!room) return;
  const details = room.details || {};
  ui.roomId.textContent = room.room_id;
  ui.roomTitle.textContent = roomTitle(room);
  const topic = field(details, 'topic');
  ui.roomTopic.textContent = topic;
  ui.roomTopic.hidden = !topic;
  const visibility = field(details, 'visibility').toLowerCase() === 'private' ? 'private' : 'public';
  ui.roomVisibility.textContent = visibility === 'private' ? 'Private' : 'Public';
  ui.roomVisibility.dataset.visibility = visibility;
  ui.roomOwner.textContent = field(details, 'owner') || '—';
  const capacity = field(details, 'capacity');
  ui.roomCapacityFact.hidden = !capacity;
  ui.roomCapacity.textContent = capacity ? `${capacity} ${plural(Number(capacity), 'viewer', 'viewers')}` : '';
  renderThumb(ui.roomThumb, room);
  document.title = `${roomTitle(room)} · Violet`;
}

function renderLobby() {
  const currentRoomId = state.room ? state.room.room_id : null;
  renderRoomList(ui.roomList, state.rooms, { currentRoomId, onJoin: onJoinClicked });
  ui.roomsEmpty.hidden = !state.topLoaded || state.rooms.length > 0;
  if (!state.topLoaded) {
    ui.roomsSummary.textContent = 'Loading rooms…';
  } else {
    const n = state.rooms.length;
    const viewers = state.rooms.reduce((sum, r) => sum + (Number(r.viewers) || 0), 0);
    ui.roomsSummary.textContent = n
      ? `${n} ${plural(n, 'room', 'rooms')} · ${viewers} ${plural(viewers, 'viewer', 'viewers')}`
      : 'No rooms yet';
  }
  if (!state.room) document.title = 'Violet · Watch-party lobby';
}

function onJoinClicked(roomId) {
  joinRoom(roomId).catch((err) => showNotice(`Could not join: ${errorText(err)}`));
}

// ---- forms ------------------------------------------------------------------

ui.createForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = new FormData(ui.createForm);
  const title = String(form.get('title') || '').trim();
  if (!title) {
    ui.createForm.elements.title.focus();
    return;
  }
  const details = { title };
  for (const name of ['topic', 'thumbnail']) {
    const value = String(form.get(name) || '').trim();
    if (value) details[name] = value;
  }
  details.visibility = form.get('visibility') === 'private' ? 'private' : 'public';
  const submit = ui.createForm.querySelector('[type="submit"]');
  submit.disabled = true;
  try {
    await createRoom(details);
    ui.createForm.reset();
    hideNotice();
  } catch (err) {
    showNotice(`Could not create the room: ${errorText(err)}`);
  } finally {
    submit.disabled = !client.isOpen;
  }
});

ui.legacyCreate.addEventListener('click', () => {
  if (client.send(ORIGINAL_ROOM_CREATED)) {
    state.legacyPending += 1;
    state.entering += 1;
  } else {
    showNotice(ERROR_TEXT.DISCONNECTED);
  }
});

ui.joinForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const roomId = ui.joinInput.value.trim();
  if (!roomId) return;
  try {
    await joinRoom(roomId);
    ui.joinForm.reset();
    hideNotice();
  } catch (err) {
    showNotice(`Could not join ${roomId}: ${errorText(err)}`);
  }
});

ui.messageForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const text = ui.messageInput.value.trim();
  if (!text || !state.room) return;
  ui.messageInput.value = '';
  try {
    await client.request({ kind: 'room-message', data: { text } });
  } catch (err) {
    if (!ui.messageInput.value) ui.messageInput.value = text;
    showNotice(`Your message was not sent: ${errorText(err)}`);
  }
});

ui.leave.addEventListener('click', async () => {
  const roomId = state.room ? state.room.room_id : null;
  state.leaving = roomId;
  try {
    await client.request({ kind: 'room-left' });
  } catch (err) {
    if (err.code !== 'NOTINROOM' && err.code !== 'DISCONNECTED') {
      showNotice(`Could not leave: ${errorText(err)}`);
      return;
    }
  } finally {
    state.leaving = null;
  }
  if (state.room && state.room.room_id === roomId) exitRoom();
  ui.createForm.elements.title.focus({ preventScroll: true });
});

ui.copyRoomId.addEventListener('click', async () => {
  const id = ui.roomId.textContent;
  try {
    await navigator.clipboard.writeText(id);
    flash(ui.copyRoomId, 'Copied');
  } catch {
    const range = document.createRange();
    range.selectNodeContents(ui.roomId);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    flash(ui.copyRoomId, 'Selected');
  }
});

function flash(button, text) {
  const before = button.dataset.label || button.textContent;
  button.dataset.label = before;
  button.textContent = text;
  setTimeout(() => { button.textContent = before; }, 1500);
}

// ---- notices ----------------------------------------------------------------

function errorText(err) {
  if (err instanceof VioletError) return ERROR_TEXT[err.code] || err.message || err.code;
  return String(err && err.message ? err.message : err);
}

function showNotice(text) {
  ui.noticeText.textContent = text;
  ui.notice.hidden = false;
}

function hideNotice() {
  ui.notice.hidden = true;
}

ui.noticeClose.addEventListener('click', hideNotice);

function roomIdFromHash() {
  const match = /^#room=(.+)$/.exec(location.hash);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]).trim() || null;
  } catch {
    return null;
  }
}

// Buttons that send something are off while the socket is down.
for (const selector of ['#create-form [type="submit"]', '#legacy-create', '#join-form [type="submit"]', '#message-form [type="submit"]']) {
  const button = document.querySelector(selector);
  button.dataset.needsConnection = '';
  button.disabled = true;
}

client.connect();

// Rendering: every value from the server goes into the page as text
// (textContent, attributes set one by one), never as HTML.

/** Creates an element: `el('li', {class: 'x', dataset: {roomId: id}}, child, 'text')`. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A details field as display text ('' when absent). */
export function field(details, name) {
  if (!details || typeof details !== 'object') return '';
  const value = details[name];
  if (value === undefined || value === null) return '';
  return typeof value === 'string' ? value : String(value);
}

/** Title to show for a room: its title, else its id. */
export function roomTitle(room) {
  return field(room.details, 'title').trim() || `Room ${room.room_id}`;
}

export function plural(n, one, many) {
  return `${n === 1 ? one : many}`;
}

/** A safe image URL (http or https only), or null. */
export function imageUrl(value) {
  if (!value) return null;
  try {
    const url = new URL(value, window.location.href);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

/** A stable hue for a string, for placeholder artwork. */
function hue(text) {
  let h = 2166136261;
  for (const ch of text) h = Math.imul(h ^ ch.codePointAt(0), 16777619) >>> 0;
  return h % 360;
}

function initials(text) {
  const words = text.trim().split(/\s+/).filter(Boolean);
  const letters = words.slice(0, 2).map((w) => [...w][0]);
  return (letters.join('') || '?').toUpperCase();
}

/** Fills `box` with the room's thumbnail, or a coloured placeholder with initials. */
export function renderThumb(box, room) {
  const title = roomTitle(room);
  const h = hue(room.room_id || title);
  box.replaceChildren();
  box.style.setProperty('--h', String(h));
  box.classList.remove('has-image');
  const fallback = el('span', { class: 'thumb-initials', text: initials(title) });
  box.append(fallback);
  const src = imageUrl(field(room.details, 'thumbnail'));
  if (src) {
    const img = el('img', { alt: '', loading: 'lazy', decoding: 'async', referrerpolicy: 'no-referrer' });
    img.addEventListener('load', () => box.classList.add('has-image'));
    img.addEventListener('error', () => img.remove());
    img.src = src;
    box.append(img);
  }
}

/**
 * Renders the lobby's room list, reusing cards by room id so that focus and
 * images survive the pushes.
 */
export function renderRoomList(list, rooms, { currentRoomId, onJoin }) {
  const existing = new Map();
  for (const li of list.children) existing.set(li.dataset.roomId, li);
  const items = [];
  for (const room of rooms) {
    let li = existing.get(room.room_id);
    if (!li) li = createRoomCard(room, onJoin);
    updateRoomCard(li, room, room.room_id === currentRoomId);
    items.push(li);
  }
  // Reorder without detaching a focused card when it is already in place.
  items.forEach((li, i) => {
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
  });
  while (list.children.length > items.length) list.lastElementChild.remove();
}

function createRoomCard(room, onJoin) {
  const thumb = el('div', { class: 'thumb', 'aria-hidden': 'true' });
  const title = el('span', { class: 'card-title', 'data-testid': 'room-card-title' });
  const topic = el('span', { class: 'card-topic', 'data-testid': 'room-card-topic' });
  const count = el('span', { class: 'card-count-number', 'data-testid': 'room-card-viewers' });
  const unit = el('span', { class: 'card-count-unit' });
  const live = el('span', { class: 'card-count' }, el('span', { class: 'live-dot', 'aria-hidden': 'true' }), count, ' ', unit);
  const here = el('span', { class: 'card-here', text: 'You are here' });
  const button = el(
    'button',
    { type: 'button', class: 'room-card', 'data-testid': 'room-card-button' },
    thumb,
    el('span', { class: 'card-text' }, title, topic),
    el('span', { class: 'card-side' }, live, here),
  );
  const li = el('li', { 'data-testid': 'room-card' }, button);
  li.dataset.roomId = room.room_id;
  button.addEventListener('click', () => onJoin(li.dataset.roomId));
  li._parts = { thumb, title, topic, count, unit, button };
  return li;
}

function updateRoomCard(li, room, isCurrent) {
  const p = li._parts;
  const title = roomTitle(room);
  const topic = field(room.details, 'topic');
  const viewers = Number(room.viewers) || 0;
  if (p.title.textContent !== title) p.title.textContent = title;
  if (p.topic.textContent !== topic) p.topic.textContent = topic;
  p.topic.hidden = !topic;
  p.count.textContent = String(viewers);
  p.unit.textContent = plural(viewers, 'viewer', 'viewers');
  const thumbKey = `${field(room.details, 'thumbnail')}\u0000${title}`;
  if (li._thumbKey !== thumbKey) {
    li._thumbKey = thumbKey;
    renderThumb(p.thumb, room);
  }
  li.classList.toggle('is-current', isCurrent);
  p.button.setAttribute(
    'aria-label',
    `${isCurrent ? 'You are in ' : 'Join '}${title}${topic ? `, ${topic}` : ''}, ${viewers} ${plural(viewers, 'viewer', 'viewers')}`,
  );
}

/** A few characters that tell sockets apart: `shim:7` shows `7`. */
function avatarText(id) {
  const parts = id.split(':').filter(Boolean);
  const tail = parts.length > 1 ? [...parts[parts.length - 1]].slice(-3) : [...id].slice(0, 2);
  return tail.join('').toUpperCase() || '?';
}

/** Renders the member list, marking the page's own socket. */
export function renderMembers(list, members, selfId) {
  const sorted = [...members].sort((a, b) => (a === selfId ? -1 : b === selfId ? 1 : a.localeCompare(b)));
  list.replaceChildren(
    ...sorted.map((id) => {
      const li = el('li', { class: 'member' });
      li.dataset.socketId = id;
      const avatar = el('span', { class: 'avatar', 'aria-hidden': 'true', text: avatarText(id) });
      avatar.style.setProperty('--h', String(hue(id)));
      li.append(avatar, el('code', { class: 'member-id', text: id }));
      if (id === selfId) li.append(el('span', { class: 'you', text: 'you' }));
      return li;
    }),
  );
}

/** Text to show for a message's `data`. */
export function messageText(data) {
  if (typeof data === 'string') return data;
  if (data && typeof data === 'object' && typeof data.text === 'string') return data.text;
  try {
    return JSON.stringify(data);
  } catch {
    return String(data);
  }
}

/** Appends one message to the log. */
export function appendMessage(log, { socketId, data, self, at = new Date() }) {
  const time = el('time', {
    class: 'msg-time',
    datetime: at.toISOString(),
    text: at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }),
  });
  const who = el('span', { class: 'msg-from', text: self ? 'You' : socketId });
  const body = el('p', { class: 'msg-text', 'data-testid': 'message-text', text: messageText(data) });
  const li = el('li', { class: `msg${self ? ' msg-self' : ''}`, 'data-testid': 'message' }, el('div', { class: 'msg-head' }, who, time), body);
  li.dataset.socketId = socketId;
  log.append(li);
  while (log.children.length > 200) log.firstElementChild.remove();
  log.scrollTop = log.scrollHeight;
}

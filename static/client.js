// The WebSocket connection to Violet's shim: JSON text frames, requests
// matched to their replies by `ref`, pushes handed to listeners by `kind`, and
// reconnection with exponential backoff when the socket drops.

const MIN_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;
const REQUEST_TIMEOUT_MS = 10000;

/** An error reply from the server, or a request that could not be answered. */
export class VioletError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = 'VioletError';
    this.code = code;
  }
}

/**
 * The socket URL for the page's own origin: ws(s)://host/ws, the shim's first
 * namespace, or ws(s)://host/ws/NAME when the page was opened with
 * `?namespace=NAME`.
 */
export function defaultSocketUrl(loc = window.location) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  const namespace = new URLSearchParams(loc.search).get('namespace');
  const path = namespace ? `/ws/${encodeURIComponent(namespace)}` : '/ws';
  return `${scheme}//${loc.host}${path}`;
}

/**
 * Events (all CustomEvent, payload in `detail`):
 *  - `status`  {state: 'connecting'|'open'|'waiting'|'closed', retryInMs?, attempt}
 *  - `welcome` {socket_id, reconnected}
 *  - `message` every frame received, parsed
 */
export class VioletClient extends EventTarget {
  constructor(url = defaultSocketUrl()) {
    super();
    this.url = url;
    this.socketId = null;
    this.state = 'closed';
    this._ws = null;
    this._attempt = 0;
    this._timer = null;
    this._nextRef = 1;
    this._pending = new Map();
    this._welcomed = 0;
    this._stopped = false;
  }

  /** Opens the socket; reconnects by itself until `close()`. */
  connect() {
    this._stopped = false;
    clearTimeout(this._timer);
    this._timer = null;
    this._setState('connecting');
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this._scheduleReconnect();
      return;
    }
    this._ws = ws;
    ws.addEventListener('message', (event) => {
      if (this._ws === ws) this._receive(event.data);
    });
    ws.addEventListener('close', () => {
      if (this._ws !== ws) return;
      this._ws = null;
      this.socketId = null;
      this._failPending(new VioletError('DISCONNECTED', 'The connection was lost'));
      if (this._stopped) {
        this._setState('closed');
      } else {
        this._scheduleReconnect();
      }
    });
    // 'error' is always followed by 'close', which does the work.
  }

  /** Closes the socket for good. */
  close() {
    this._stopped = true;
    clearTimeout(this._timer);
    this._timer = null;
    if (this._ws) this._ws.close(1000, 'bye');
    else this._setState('closed');
  }

  /** Reconnects now instead of waiting for the backoff. */
  retryNow() {
    if (this.state === 'waiting') this.connect();
  }

  get isOpen() {
    return this.state === 'open';
  }

  /** Sends a request and resolves with its reply, or rejects with a VioletError. */
  request(message, { timeoutMs = REQUEST_TIMEOUT_MS } = {}) {
    if (!this.isOpen) {
      return Promise.reject(new VioletError('DISCONNECTED', 'Not connected to the server'));
    }
    const ref = `r${this._nextRef++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(ref);
        reject(new VioletError('TIMEOUT', 'The server did not answer in time'));
      }, timeoutMs);
      this._pending.set(ref, { resolve, reject, timer, kind: message.kind });
      this._ws.send(JSON.stringify({ ...message, ref }));
    });
  }

  /** Sends a message without waiting for a reply; false when not connected. */
  send(message) {
    if (!this.isOpen) return false;
    this._ws.send(JSON.stringify(message));
    return true;
  }

  _receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return; // not JSON: ignore
    }
    if (!message || typeof message !== 'object' || typeof message.kind !== 'string') return;

    if (message.kind === 'welcome') {
      this.socketId = typeof message.socket_id === 'string' ? message.socket_id : null;
      this._attempt = 0;
      const reconnected = this._welcomed > 0;
      this._welcomed += 1;
      this._setState('open');
      this._emit('welcome', { socket_id: this.socketId, reconnected });
    }

    const ref = message.ref;
    if (ref !== undefined && ref !== null && this._pending.has(String(ref))) {
      const pending = this._pending.get(String(ref));
      this._pending.delete(String(ref));
      clearTimeout(pending.timer);
      if (message.kind === 'error') {
        pending.reject(new VioletError(message.code || 'ERROR', message.message));
      } else {
        pending.resolve(message);
      }
    }
    this._emit('message', message);
  }

  _scheduleReconnect() {
    const base = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** this._attempt);
    const delay = Math.round(base / 2 + Math.random() * (base / 2));
    this._attempt += 1;
    this._setState('waiting', { retryInMs: delay });
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this.connect(), delay);
  }

  _failPending(error) {
    for (const { reject, timer } of this._pending.values()) {
      clearTimeout(timer);
      reject(error);
    }
    this._pending.clear();
  }

  _setState(state, extra = {}) {
    this.state = state;
    this._emit('status', { state, attempt: this._attempt, ...extra });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

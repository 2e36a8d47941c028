// The lobby page in a real headless Chromium, against the real shim and a real
// redis-server with the Violet module: used as a person would, with clicks and
// typing, asserting on what the page shows.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS, buildRelease, redisCommand, startRedis, startShim } from './harness.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT = 20000; // generous: the top list is pushed at most once a second

let redis;
let shim;
let browser;
const pageErrors = [];

before(async () => {
  buildRelease();
  redis = await startRedis();
  shim = await startShim(redis.url);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}, { timeout: 30 * 60 * 1000 });

after(async () => {
  await browser?.close().catch(() => {});
  await shim?.stop();
  await redis?.stop();
});

/** A fresh browser context (its own cookies and storage), as a second person. */
async function openLobby({ width = 1280, height = 860, on = shim, query = '' } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (msg) => {
    // A refused connection while the shim is down is logged by the browser
    // itself; it is not a script error.
    if (msg.type() === 'error' && !/WebSocket connection to .* failed/.test(msg.text())) {
      pageErrors.push(`console: ${msg.text()}`);
    }
  });
  await page.goto(`${on.baseUrl}/${query}`);
  await hasText(page.getByTestId('status'), 'Connected');
  return page;
}

/** Waits until the locator's text is exactly `expected` (whitespace trimmed). */
async function hasText(locator, expected, timeout = WAIT) {
  const exact = new RegExp(`^\\s*${expected.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`);
  try {
    await locator.filter({ hasText: exact }).first().waitFor({ state: 'visible', timeout });
  } catch (err) {
    const actual = await locator.allTextContents().catch(() => []);
    throw new Error(`expected ${locator} to read ${JSON.stringify(expected)}, it reads ${JSON.stringify(actual.map((t) => t.trim()))}\n${shimLog()}`, { cause: err });
  }
}

/** Waits until some element matched by the locator contains `text`. */
async function contains(locator, text, timeout = WAIT) {
  try {
    await locator.filter({ hasText: text }).first().waitFor({ state: 'visible', timeout });
  } catch (err) {
    const actual = await locator.allTextContents().catch(() => []);
    throw new Error(`expected ${locator} to contain ${JSON.stringify(text)}, it reads ${JSON.stringify(actual.map((t) => t.trim()))}\n${shimLog()}`, { cause: err });
  }
}

function shimLog() {
  const out = shim?.output?.trim();
  return out ? `--- shim output (tail) ---\n${out.slice(-4000)}` : '';
}

async function text(locator) {
  return (await locator.textContent({ timeout: WAIT })).trim();
}

/** The lobby card of a room, found by what a person sees: its title. */
function card(page, title) {
  return page.getByTestId('room-card').filter({ has: page.getByTestId('room-card-title').filter({ hasText: title }) });
}

describe('lobby page', () => {
  test('two people meet in a room created with the form', async () => {
    const title = `Movie night ${Date.now()}`;
    const topic = 'Tokyo Godfathers <b>&amp; friends</b>';

    const a = await openLobby();
    const b = await openLobby();
    const aSocket = await text(a.getByTestId('socket-id'));
    const bSocket = await text(b.getByTestId('socket-id'));
    assert.notEqual(aSocket, bSocket);

    // A creates a public room with the form.
    await a.getByLabel('Title', { exact: true }).fill(title);
    await a.getByLabel('Topic', { exact: true }).fill(topic);
    await a.getByLabel(/Public/).check();
    await a.getByRole('button', { name: 'Create room', exact: true }).click();
    await hasText(a.getByTestId('room-title'), title);
    await hasText(a.getByTestId('viewer-count'), '1');
    const roomId = await text(a.getByTestId('room-id'));
    assert.ok(roomId.length > 0, 'the room shows its id');
    await contains(a.getByTestId('member-list'), aSocket);

    // B sees it in the lobby, with its viewers; what the server sent is text.
    const bCard = card(b, title);
    await bCard.waitFor({ timeout: WAIT });
    assert.equal(await bCard.getAttribute('data-room-id'), roomId);
    await hasText(bCard.getByTestId('room-card-topic'), topic);
    assert.equal(await bCard.locator('b').count(), 0, 'markup in details is shown as text');
    await hasText(bCard.getByTestId('room-card-viewers'), '1');
    await b.screenshot({ path: '/tmp/violet-lobby.png' });

    // B joins by clicking the room.
    await bCard.getByRole('button').click();
    await hasText(b.getByTestId('room-id'), roomId);
    await hasText(b.getByTestId('room-title'), title);
    await hasText(b.getByTestId('viewer-count'), '2');
    await hasText(a.getByTestId('viewer-count'), '2');
    await contains(a.getByTestId('member-list'), bSocket);
    await contains(b.getByTestId('member-list'), aSocket);
    await contains(b.getByTestId('member-list'), bSocket);
    await hasText(card(a, title).getByTestId('room-card-viewers'), '2');

    // A says something; both see it.
    const message = `Hello from A <i>${Date.now()}</i>`;
    await a.getByLabel('Message', { exact: true }).fill(message);
    await a.getByRole('button', { name: 'Send', exact: true }).click();
    await hasText(b.getByTestId('message-text'), message);
    await hasText(a.getByTestId('message-text'), message);
    await contains(b.getByTestId('message'), aSocket);
    assert.equal(await b.getByTestId('message-log').locator('i').count(), 0, 'messages are shown as text');
    await a.evaluate(() => window.scrollTo(0, 0));
    await a.screenshot({ path: '/tmp/violet-room.png' });

    // B goes away; A is alone again.
    await b.close();
    await hasText(a.getByTestId('viewer-count'), '1');
    await a.getByTestId('member-list').getByText(bSocket).waitFor({ state: 'detached', timeout: WAIT });
    await hasText(card(a, title).getByTestId('room-card-viewers'), '1');

    // Leave: the room view goes, the lobby stays.
    await a.getByRole('button', { name: 'Leave room', exact: true }).click();
    await a.getByTestId('room-view').waitFor({ state: 'hidden', timeout: WAIT });
    await a.close();
  });

  test('the original "Click to Create Room" button creates a room listed in the lobby', async () => {
    const creator = await openLobby();
    const watcher = await openLobby();
    await creator.getByRole('button', { name: 'Click to Create Room', exact: true }).click();
    await hasText(creator.getByTestId('room-title'), 'Perfect Blue');
    await hasText(creator.getByTestId('room-topic'), 'Satoshi Kon clips');
    await hasText(creator.getByTestId('viewer-count'), '1');
    const roomId = await text(creator.getByTestId('room-id'));
    assert.ok(roomId.length > 0);

    const listed = watcher.locator(`[data-testid="room-card"][data-room-id="${roomId.replace(/["\\]/g, '\\$&')}"]`);
    await listed.waitFor({ timeout: WAIT });
    await hasText(listed.getByTestId('room-card-title'), 'Perfect Blue');
    await hasText(listed.getByTestId('room-card-viewers'), '1');
    await creator.close();
    await watcher.close();
  });

  test('the page reconnects when the shim restarts', async () => {
    const page = await openLobby();
    const before = await text(page.getByTestId('socket-id'));
    const port = shim.port;
    await shim.stop();
    await contains(page.getByTestId('status'), 'Offline');
    shim = await startShim(redis.url, port);
    await hasText(page.getByTestId('status'), 'Connected', 60000);
    const after = await text(page.getByTestId('socket-id'));
    assert.notEqual(after, before, 'a new connection has a new socket id');

    // It works again: a private room made now.
    const title = `After the restart ${Date.now()}`;
    await page.getByLabel('Title', { exact: true }).fill(title);
    await page.getByLabel(/Private/).check();
    await page.getByRole('button', { name: 'Create room', exact: true }).click();
    await hasText(page.getByTestId('room-title'), title);
    await hasText(page.getByTestId('room-visibility'), 'Private');
    await hasText(page.getByTestId('viewer-count'), '1');
    const roomId = await text(page.getByTestId('room-id'));

    // Someone else does not see it in the lobby, but joins it by typing its id.
    const friend = await openLobby();
    await friend.getByTestId('rooms-summary').filter({ hasNotText: 'Loading' }).waitFor({ timeout: WAIT });
    assert.equal(await card(friend, title).count(), 0, 'private rooms are not listed');
    await friend.getByLabel('Room id', { exact: true }).fill(roomId);
    await friend.getByRole('button', { name: 'Join', exact: true }).click();
    await hasText(friend.getByTestId('room-title'), title);
    await hasText(friend.getByTestId('viewer-count'), '2');
    await hasText(page.getByTestId('viewer-count'), '2');
    await friend.close();
    await hasText(page.getByTestId('viewer-count'), '1');
    await page.close();
  });

  test('a page whose socket was taken out by the server takes its place back', async () => {
    // A second shim: its sockets are released (as when a shim loses its
    // lease) while the first shim's page stays.
    const other = await startShim(redis.url);
    try {
      const title = `Lease ${Date.now()}`;
      const host = await openLobby();
      await host.getByLabel('Title', { exact: true }).fill(title);
      await host.getByRole('button', { name: 'Create room', exact: true }).click();
      await hasText(host.getByTestId('room-title'), title);
      const roomId = await text(host.getByTestId('room-id'));

      const guest = await openLobby({ on: other });
      const guestSocket = await text(guest.getByTestId('socket-id'));
      await guest.getByLabel('Room id', { exact: true }).fill(roomId);
      await guest.getByRole('button', { name: 'Join', exact: true }).click();
      await hasText(guest.getByTestId('viewer-count'), '2');
      await hasText(host.getByTestId('viewer-count'), '2');

      const node = guestSocket.split(':')[0];
      const reply = await redisCommand(redis.port, ['VIOLET.RELEASE', 'watch-party', node]);
      assert.equal(reply, ':1\r\n', 'the guest socket was taken out');
      // The guest's page hears it was taken out, joins again, and stays in
      // the room; the host sees the guest come back.
      await contains(host.getByTestId('member-list'), guestSocket);
      await hasText(guest.getByTestId('room-title'), title);
      await hasText(guest.getByTestId('viewer-count'), '2');
      await hasText(host.getByTestId('viewer-count'), '2');
      // The page's views above may still show the state from before the
      // release; Redis says when the join again has happened.
      let members = '';
      for (const deadline = Date.now() + WAIT; Date.now() < deadline;) {
        members = await redisCommand(redis.port, ['VIOLET.WHERE', 'watch-party', guestSocket]);
        if (members.includes(roomId)) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.ok(members.includes(roomId), `the guest is back in the room in Redis: ${members}`);
      await guest.close();
      await host.close();
    } finally {
      await other.stop();
    }
  });

  test('a page opened with ?namespace= lives in that namespace only', async () => {
    const here = `Default room ${Date.now()}`;
    const there = `Games room ${Date.now()}`;
    const a = await openLobby();
    const g = await openLobby({ query: '?namespace=games' });
    const gSocket = await text(g.getByTestId('socket-id'));

    await a.getByLabel('Title', { exact: true }).fill(here);
    await a.getByLabel(/Public/).check();
    await a.getByRole('button', { name: 'Create room', exact: true }).click();
    await hasText(a.getByTestId('room-title'), here);
    await g.getByLabel('Title', { exact: true }).fill(there);
    await g.getByLabel(/Public/).check();
    await g.getByRole('button', { name: 'Create room', exact: true }).click();
    await hasText(g.getByTestId('room-title'), there);
    const gRoom = await text(g.getByTestId('room-id'));

    // Each lobby lists its own namespace's room, never the other's.
    await card(a, here).waitFor({ timeout: WAIT });
    await card(g, there).waitFor({ timeout: WAIT });
    assert.equal(await card(a, there).count(), 0, 'the default lobby lists no games room');
    assert.equal(await card(g, here).count(), 0, 'the games lobby lists no default room');
    // Redis has the games page's socket in the games namespace.
    const where = await redisCommand(redis.port, ['VIOLET.WHERE', 'games', gSocket]);
    assert.ok(where.includes(gRoom), `VIOLET.WHERE games ${gSocket}: ${JSON.stringify(where)}`);
    await a.close();
    await g.close();
  });

  test('the pages raised no script errors', () => {
    assert.deepEqual(pageErrors, []);
  });
});

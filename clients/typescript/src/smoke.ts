// Smoke test against a live Keel: `node --experimental-websocket dist/smoke.js http://127.0.0.1:8000`.
import assert from "node:assert/strict";
import { createProject, listProjects, profile, register } from "./gen/sdk.gen.js";
import { KeelSession } from "./session.js";
import { subscribe, type ProjectEvent } from "./realtime.js";

const baseUrl = process.argv[2] ?? "";
if (baseUrl === "") throw new Error("usage: smoke.js BASE_URL");

function waitFor<T>(what: string, check: () => T | undefined, timeoutMs = 30_000): Promise<T> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const poll = (): void => {
      const value = check();
      if (value !== undefined) resolve(value);
      else if (Date.now() - started > timeoutMs) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(poll, 20);
    };
    poll();
  });
}

async function main(): Promise<void> {
  const session = new KeelSession({ baseUrl });
  const email = `ts-smoke-${Date.now()}@example.com`;
  const signedUp = await register({
    client: session.client,
    body: { email, password: "a long enough passphrase", name: "TS Smoke" },
    throwOnError: true,
  });
  session.setTokens(signedUp.data);
  const me = await profile({ client: session.client, throwOnError: true });
  assert.equal(me.data.email, email);

  // Live events: create a project and see its event.
  const events: ProjectEvent[] = [];
  const live = subscribe({ session, onEvent: (e) => events.push(e) });
  await waitFor("the subscription to be live", () => (live.status === "live" ? true : undefined));
  const first = await createProject({
    client: session.client,
    body: { name: "Smoke One" },
    throwOnError: true,
  });
  await waitFor("project.created", () => events.find((e) => e.data.id === first.data.id));
  live.close();

  // Resume: an event committed while disconnected arrives after reconnecting with lastEventId.
  const second = await createProject({
    client: session.client,
    body: { name: "Smoke Two" },
    throwOnError: true,
  });
  const resumed: ProjectEvent[] = [];
  const again = subscribe({ session, onEvent: (e) => resumed.push(e), lastEventId: live.lastEventId });
  const missed = await waitFor("the missed event", () => resumed.find((e) => e.data.id === second.data.id));
  assert.equal(missed.type, "project.created");
  assert.ok(!resumed.some((e) => e.data.id === first.data.id), "an event was delivered twice");
  again.close();

  // Shared refresh: five concurrent calls with a refused access token make one refresh.
  session.setTokens({ accessToken: "not-a-valid-token", refreshToken: signedUp.data.refreshToken });
  const before = session.refreshCount;
  const pages = await Promise.all(
    Array.from({ length: 5 }, () => listProjects({ client: session.client, throwOnError: true })),
  );
  assert.equal(session.refreshCount - before, 1, "concurrent 401s must share one refresh");
  for (const page of pages) assert.equal(page.data.pagination.total, 2);

  await session.logout();
  console.log("typescript client smoke test: ok");
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

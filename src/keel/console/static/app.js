// The Keel console: hash-routed screens over the REST and real-time APIs.
import { Api, ApiError, describeError } from "./api.js";
import { clear, field, formatTime, h } from "./dom.js";
import { LiveEvents } from "./live.js";

const api = new Api();
const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const liveStatus = document.getElementById("live-status");
const announcer = document.getElementById("announcer");
const STATUSES = ["active", "completed", "archived"];
const LIVE_LABELS = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", offline: "Offline" };

let me = null;
let view = null; // the screen on show: { onEvent?(event|null) }

const live = new LiveEvents(api, {
  onEvent: (event) => view?.onEvent?.(event),
  onResync: () => view?.onEvent?.(null),
  onStatus: (state) => {
    liveStatus.textContent = LIVE_LABELS[state];
    liveStatus.dataset.state = state;
  },
});

api.onSignOut(() => {
  live.stop();
  me = null;
  renderNav();
  if (location.hash === "#/signin") route();
  else location.hash = "#/signin";
});

function announce(text) {
  announcer.textContent = "";
  setTimeout(() => {
    announcer.textContent = text;
  }, 50);
}

/** An alert region that shows an API error (or a success note) in plain words. */
function messageBox() {
  const box = h("div", { className: "message", role: "alert", hidden: true });
  box.showError = (error) => {
    if (!(error instanceof ApiError) && !(error instanceof TypeError)) console.error(error);
    const { title, lines, code } = describeError(error);
    box.className = "message error";
    box.dataset.code = code || "";
    box.replaceChildren(h("strong", {}, title));
    if (lines.length) box.append(h("ul", {}, lines.map((line) => h("li", {}, line))));
    box.hidden = false;
  };
  box.showNote = (text) => {
    box.className = "message note";
    box.dataset.code = "";
    box.replaceChildren(text);
    box.hidden = false;
  };
  box.clear = () => {
    box.hidden = true;
    box.replaceChildren();
  };
  return box;
}

function heading(text) {
  return h("h1", { tabindex: "-1" }, text);
}

function select(name, options, value, attrs = {}) {
  return h(
    "select",
    { name, ...attrs },
    options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)),
  );
}

function pager(pagination, onPage) {
  const { page, totalPages } = pagination;
  if (!page || !totalPages || totalPages <= 1) return null;
  return h(
    "nav",
    { className: "pager", "aria-label": "Pages" },
    h("button", { type: "button", disabled: page <= 1, onclick: () => onPage(page - 1) }, "Previous"),
    h("span", {}, `Page ${page} of ${totalPages}`),
    h("button", { type: "button", disabled: page >= totalPages, onclick: () => onPage(page + 1) }, "Next"),
  );
}

function busy(button, promise) {
  button.disabled = true;
  return promise.finally(() => {
    button.disabled = false;
  });
}

/**
 * Asks in place of `actions` (a row of buttons) whether to go on: Escape or `no` puts the row
 * back and focus on `trigger`; yes runs `run`, whose error shows in `message`.
 * @param {HTMLElement} actions
 * @param {HTMLElement} trigger
 * @param {{question: string, message: any, run: () => Promise<unknown>, yes?: string, no?: string, label?: string}} options
 */
function confirmInPlace(actions, trigger, { question, message, run, yes = "Yes, delete", no = "Keep it", label = "Confirm deletion" }) {
  const yesButton = h("button", { type: "button", className: "danger" }, yes);
  const noButton = h("button", { type: "button" }, no);
  const prompt = h("div", { className: "confirm", role: "group", "aria-label": label }, h("p", {}, question), yesButton, noButton);
  const back = () => {
    prompt.replaceWith(actions);
    trigger.focus();
  };
  actions.replaceWith(prompt);
  noButton.addEventListener("click", back);
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Escape") back();
  });
  yesButton.addEventListener("click", async () => {
    message.clear();
    try {
      await busy(yesButton, run());
    } catch (error) {
      message.showError(error);
    }
  });
  noButton.focus();
}

/**
 * An async loader that never runs twice at once: calls meanwhile fold into one more run.
 * @param {() => Promise<void>} run
 * @returns {() => Promise<void>}
 */
function coalesced(run) {
  /** @type {Promise<void> | null} */
  let running = null;
  let again = false;
  const call = async () => {
    if (running) {
      again = true;
      return running;
    }
    running = run();
    try {
      await running;
    } finally {
      running = null;
    }
    if (again) {
      again = false;
      await call();
    }
  };
  return call;
}

// --- Sign in ------------------------------------------------------------------------------

function signInScreen() {
  const message = messageBox();
  const email = h("input", { type: "email", name: "email", required: true, autocomplete: "username" });
  const password = h("input", { type: "password", name: "password", required: true, autocomplete: "current-password" });
  const totp = h("input", {
    name: "totp",
    inputmode: "numeric",
    autocomplete: "one-time-code",
    pattern: "[0-9]{6}",
    maxlength: "6",
  });
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    {
      className: "card narrow",
      onsubmit: async (event) => {
        event.preventDefault();
        message.clear();
        try {
          me = await busy(submit, api.signIn({ email: email.value, password: password.value, totp: totp.value }));
          live.start();
          renderNav();
          location.hash = "#/projects";
        } catch (error) {
          message.showError(error);
          if (error instanceof ApiError && error.code === "MFA_REQUIRED") totp.focus();
        }
      },
    },
    field("Email", email),
    field("Password", password),
    field("Authenticator code", totp, "Only if two-factor authentication is on: the 6 digits in your app."),
    submit,
  );
  main.replaceChildren(heading("Sign in to Keel"), message, form);
  email.focus();
}

// --- Projects -----------------------------------------------------------------------------

function projectsScreen() {
  const state = { page: 1, q: "", status: "", editing: null };
  const message = messageBox();
  const list = h("ul", { className: "projects", "aria-label": "Projects" });
  const summary = h("p", { className: "summary", "aria-live": "polite" });
  const pagerSlot = h("div");
  const cards = new Map(); // project id -> editing card kept across reloads

  const q = h("input", { type: "search", name: "q", maxlength: "200", placeholder: "Name or description" });
  const statusFilter = select("status", [["", "Any status"], ...STATUSES.map((s) => [s, s])], "");
  let searchTimer = null;
  const search = () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      state.q = q.value.trim();
      state.status = statusFilter.value;
      state.page = 1;
      load();
    }, 250);
  };
  q.addEventListener("input", search);
  statusFilter.addEventListener("change", search);
  const searchForm = h(
    "form",
    { className: "toolbar", role: "search", onsubmit: (e) => (e.preventDefault(), search()) },
    field("Search", q),
    field("Status", statusFilter),
  );

  const name = h("input", { name: "name", required: true, minlength: "3", maxlength: "100" });
  const description = h("textarea", { name: "description", maxlength: "1000", rows: "2" });
  const status = select("status", STATUSES.map((s) => [s, s]), "active");
  const create = h("button", { type: "submit" }, "Create project");
  const createForm = h(
    "form",
    {
      className: "card",
      "aria-labelledby": "new-project",
      onsubmit: async (event) => {
        event.preventDefault();
        message.clear();
        try {
          const body = { name: name.value, status: status.value };
          if (description.value.trim()) body.description = description.value;
          const { body: project } = await busy(
            create,
            api.send("POST", "/api/v1/projects", { body, headers: { "Idempotency-Key": crypto.randomUUID() } }),
          );
          createForm.reset();
          message.showNote(`Created “${project.name}”.`);
          load();
        } catch (error) {
          message.showError(error);
        }
      },
    },
    h("h2", { id: "new-project" }, "New project"),
    h("div", { className: "row" }, field("Name", name, "3–100 letters, digits, spaces or hyphens."), field("Status", status)),
    field("Description", description),
    create,
  );

  function projectCard(project) {
    if (state.editing === project.id && cards.has(project.id)) return cards.get(project.id);
    const card = h(
      "li",
      { className: "card project", "data-id": project.id },
      h("div", { className: "project-head" }, h("h3", {}, project.name), h("span", { className: `badge ${project.status}` }, project.status)),
      project.description ? h("p", {}, project.description) : null,
      h("p", { className: "meta" }, `Updated ${formatTime(project.updatedAt)}`),
      h(
        "div",
        { className: "actions" },
        h("button", { type: "button", onclick: () => edit(project, card) }, "Edit", h("span", { className: "visually-hidden" }, ` ${project.name}`)),
        h("button", { type: "button", className: "danger", onclick: (event) => confirmDelete(project, card, event.currentTarget) }, "Delete", h("span", { className: "visually-hidden" }, ` ${project.name}`)),
      ),
    );
    return card;
  }

  async function edit(project, card) {
    message.clear();
    let etag;
    let current;
    try {
      const { body, headers } = await api.send("GET", `/api/v1/projects/${project.id}`);
      current = body;
      etag = headers.get("ETag");
    } catch (error) {
      message.showError(error);
      return;
    }
    const editName = h("input", { name: "name", required: true, minlength: "3", maxlength: "100", value: current.name });
    const editDescription = h("textarea", { name: "description", maxlength: "1000", rows: "2" });
    editDescription.value = current.description || "";
    const editStatus = select("status", STATUSES.map((s) => [s, s]), current.status);
    const save = h("button", { type: "submit" }, "Save");
    const form = h(
      "form",
      {
        className: "edit",
        "aria-label": `Edit ${current.name}`,
        onsubmit: async (event) => {
          event.preventDefault();
          message.clear();
          try {
            await busy(
              save,
              api.send("PATCH", `/api/v1/projects/${project.id}`, {
                body: { name: editName.value, description: editDescription.value || null, status: editStatus.value },
                headers: etag ? { "If-Match": etag } : {},
              }),
            );
            state.editing = null;
            cards.delete(project.id);
            announce(`Saved “${editName.value}”.`);
            await load();
            list.querySelector(`[data-id="${project.id}"] button`)?.focus();
          } catch (error) {
            message.showError(error);
            if (error instanceof ApiError && error.status === 412) {
              const { body, headers } = await api.send("GET", `/api/v1/projects/${project.id}`);
              etag = headers.get("ETag");
              editName.value = body.name;
              editDescription.value = body.description || "";
              editStatus.value = body.status;
            }
          }
        },
      },
      field("Name", editName),
      field("Description", editDescription),
      field("Status", editStatus),
      h(
        "div",
        { className: "actions" },
        save,
        h("button", { type: "button", onclick: () => cancelEdit(project.id) }, "Cancel"),
      ),
    );
    card.replaceChildren(form);
    state.editing = project.id;
    cards.set(project.id, card);
    editName.focus();
  }

  function cancelEdit(id) {
    state.editing = null;
    cards.delete(id);
    load().then(() => list.querySelector(`[data-id="${id}"] button`)?.focus());
  }

  function confirmDelete(project, card, trigger) {
    confirmInPlace(card.querySelector(".actions"), trigger, {
      question: `Delete “${project.name}”? This cannot be undone.`,
      message,
      run: async () => {
        await api.send("DELETE", `/api/v1/projects/${project.id}`);
        announce(`Deleted “${project.name}”.`);
        await load();
        q.focus();
      },
    });
  }

  const load = coalesced(async () => {
    try {
      const result = await api.get("/api/v1/projects", {
        page: state.page,
        limit: 20,
        q: state.q,
        status: state.status,
      });
      list.replaceChildren(...result.data.map(projectCard));
      if (!result.data.length) list.replaceChildren(h("li", { className: "empty" }, state.q || state.status ? "No project matches." : "No projects yet: create the first one above."));
      const { total } = result.pagination;
      summary.textContent = `${total} project${total === 1 ? "" : "s"}`;
      pagerSlot.replaceChildren(
        pager(result.pagination, (page) => {
          state.page = page;
          load();
        }) || "",
      );
    } catch (error) {
      message.showError(error);
    }
  });

  main.replaceChildren(
    heading("Projects"),
    message,
    createForm,
    h("section", { "aria-labelledby": "list-heading" }, h("h2", { id: "list-heading" }, "Your projects"), searchForm, summary, list, pagerSlot),
  );
  load();
  return {
    onEvent(event) {
      if (event) {
        const verb = { "project.created": "created", "project.updated": "updated", "project.deleted": "deleted" }[event.type];
        announce(`“${event.data.name}” was ${verb}.`);
      }
      load();
    },
  };
}

// --- Sessions -----------------------------------------------------------------------------

function sessionsScreen() {
  const message = messageBox();
  const body = h("tbody");
  async function load() {
    try {
      const { data } = await api.get("/api/v1/auth/sessions");
      body.replaceChildren(
        ...data.map((s) => {
          const revoke = h(
            "button",
            {
              type: "button",
              className: "danger",
              onclick: async () => {
                message.clear();
                try {
                  await busy(revoke, api.send("DELETE", `/api/v1/auth/sessions/${s.id}`));
                  if (s.current) {
                    api.setTokens(null);
                    return;
                  }
                  announce("Session revoked.");
                  await load();
                } catch (error) {
                  message.showError(error);
                }
              },
            },
            s.current ? "Sign out here" : "Revoke",
          );
          return h(
            "tr",
            { "data-id": s.id },
            h("td", { "data-label": "Device" }, s.userAgent || "Unknown device", s.current ? h("span", { className: "badge active" }, "this session") : null),
            h("td", { "data-label": "IP" }, s.ip || "—"),
            h("td", { "data-label": "Last used" }, formatTime(s.lastUsedAt)),
            h("td", { "data-label": "Expires" }, formatTime(s.expiresAt)),
            h("td", {}, revoke),
          );
        }),
      );
    } catch (error) {
      message.showError(error);
    }
  }
  main.replaceChildren(
    heading("Sessions"),
    h("p", {}, "Every device signed in to your account. Revoking one signs it out at once."),
    message,
    table(["Device", "IP", "Last used", "Expires", h("span", { className: "visually-hidden" }, "Actions")], body, "Sessions"),
  );
  load();
  return {};
}

function table(headers, body, label) {
  return h(
    "div",
    { className: "table-wrap", role: "region", "aria-label": label, tabindex: "0" },
    h("table", {}, h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))), body),
  );
}

// --- Security (MFA) -----------------------------------------------------------------------

function securityScreen() {
  const message = messageBox();
  const setupSlot = h("div");
  const start = h("button", { type: "button" }, "Set up two-factor authentication");
  start.addEventListener("click", async () => {
    message.clear();
    try {
      const { body: setup } = await busy(start, api.send("POST", "/api/v1/auth/mfa/setup"));
      const qr = await fetch("/console/qr", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ text: setup.otpauthUri }),
      });
      const figure = h("figure", { className: "qr" });
      if (qr.ok) {
        const svg = new DOMParser().parseFromString(await qr.text(), "image/svg+xml").documentElement;
        svg.setAttribute("role", "img");
        svg.setAttribute("aria-label", "QR code for your authenticator app");
        figure.append(document.importNode(svg, true));
      }
      figure.append(h("figcaption", {}, "Scan with your authenticator app, or type this key: ", h("code", { className: "secret" }, setup.secret)));
      const code = h("input", { name: "code", inputmode: "numeric", autocomplete: "one-time-code", required: true, pattern: "[0-9]{6}", maxlength: "6" });
      const confirm = h("button", { type: "submit" }, "Turn on");
      const form = h(
        "form",
        {
          className: "card",
          onsubmit: async (event) => {
            event.preventDefault();
            message.clear();
            try {
              await busy(confirm, api.send("POST", "/api/v1/auth/mfa/enable", { body: { code: code.value } }));
              setupSlot.replaceChildren();
              message.showNote("Two-factor authentication is on: you will need a code from your app at every sign-in.");
            } catch (error) {
              message.showError(error);
            }
          },
        },
        figure,
        field("Code from the app", code, "6 digits; proves the app is set up."),
        confirm,
      );
      setupSlot.replaceChildren(form);
      code.focus();
    } catch (error) {
      message.showError(error);
    }
  });

  const password = h("input", { type: "password", name: "password", required: true, autocomplete: "current-password" });
  const code = h("input", { name: "code", inputmode: "numeric", autocomplete: "one-time-code", required: true, pattern: "[0-9]{6}", maxlength: "6" });
  const off = h("button", { type: "submit", className: "danger" }, "Turn off");
  const disableForm = h(
    "form",
    {
      className: "card",
      "aria-labelledby": "mfa-off",
      onsubmit: async (event) => {
        event.preventDefault();
        message.clear();
        try {
          await busy(off, api.send("POST", "/api/v1/auth/mfa/disable", { body: { password: password.value, code: code.value } }));
          disableForm.reset();
          message.showNote("Two-factor authentication is off.");
        } catch (error) {
          message.showError(error);
        }
      },
    },
    h("h2", { id: "mfa-off" }, "Turn off two-factor authentication"),
    field("Password", password),
    field("Code from the app", code),
    off,
  );
  main.replaceChildren(
    heading("Security"),
    message,
    h("section", { className: "card", "aria-labelledby": "mfa-on" }, h("h2", { id: "mfa-on" }, "Two-factor authentication"), h("p", {}, "Protect your account with a code from an authenticator app at sign-in."), start, setupSlot),
    disableForm,
  );
  return {};
}

// --- Administration -----------------------------------------------------------------------

function usersScreen() {
  const message = messageBox();
  const body = h("tbody");
  const pagerSlot = h("div");
  let page = 1;
  async function patch(user, changes, control) {
    message.clear();
    try {
      await busy(control, api.send("PATCH", `/api/v1/users/${user.id}`, { body: changes }));
      announce(`Updated ${user.email}.`);
      await load();
    } catch (error) {
      message.showError(error);
      await load();
    }
  }
  async function load() {
    try {
      const result = await api.get("/api/v1/users", { page, limit: 20 });
      body.replaceChildren(
        ...result.data.map((user) => {
          const role = select("role", [["user", "user"], ["admin", "admin"]], user.role, { "aria-label": `Role of ${user.email}` });
          role.addEventListener("change", () => patch(user, { role: role.value }, role));
          const toggle = h("button", { type: "button", className: user.isActive ? "danger" : "" }, user.isActive ? "Deactivate" : "Reactivate", h("span", { className: "visually-hidden" }, ` ${user.email}`));
          toggle.addEventListener("click", () => patch(user, { isActive: !user.isActive }, toggle));
          return h(
            "tr",
            { "data-email": user.email },
            h("td", { "data-label": "Name" }, user.name),
            h("td", { "data-label": "Email" }, user.email),
            h("td", { "data-label": "Role" }, role),
            h("td", { "data-label": "Status" }, user.isActive ? "active" : "deactivated", user.mfaEnabled ? " · MFA" : ""),
            h("td", { "data-label": "Joined" }, formatTime(user.createdAt)),
            h("td", {}, user.id === me?.id ? "you" : toggle),
          );
        }),
      );
      pagerSlot.replaceChildren(pager(result.pagination, (p) => ((page = p), load())) || "");
    } catch (error) {
      message.showError(error);
    }
  }
  main.replaceChildren(
    heading("Users"),
    message,
    table(["Name", "Email", "Role", "Status", "Joined", h("span", { className: "visually-hidden" }, "Actions")], body, "Users"),
    pagerSlot,
  );
  load();
  return {};
}

function auditScreen() {
  const message = messageBox();
  const body = h("tbody");
  const pagerSlot = h("div");
  const action = h("input", { name: "action", maxlength: "64", placeholder: "e.g. auth.login" });
  let page = 1;
  async function load() {
    message.clear();
    try {
      const result = await api.get("/api/v1/audit", { page, limit: 25, action: action.value.trim() });
      body.replaceChildren(
        ...result.data.map((entry) =>
          h(
            "tr",
            {},
            h("td", { "data-label": "When" }, formatTime(entry.at)),
            h("td", { "data-label": "Action" }, h("code", {}, entry.action)),
            h("td", { "data-label": "Outcome" }, entry.outcome),
            h("td", { "data-label": "Actor" }, entry.actorId || "—"),
            h("td", { "data-label": "Target" }, entry.targetType ? `${entry.targetType} ${entry.targetId || ""}` : "—"),
            h("td", { "data-label": "IP" }, entry.ip || "—"),
          ),
        ),
      );
      if (!result.data.length) body.replaceChildren(h("tr", {}, h("td", { colspan: "6" }, "No entries.")));
      pagerSlot.replaceChildren(pager(result.pagination, (p) => ((page = p), load())) || "");
    } catch (error) {
      message.showError(error);
    }
  }
  const filter = h(
    "form",
    { className: "toolbar", role: "search", onsubmit: (e) => (e.preventDefault(), (page = 1), load()) },
    field("Action", action),
    h("button", { type: "submit" }, "Filter"),
  );
  main.replaceChildren(
    heading("Audit log"),
    message,
    filter,
    table(["When", "Action", "Outcome", "Actor", "Target", "IP"], body, "Audit log"),
    pagerSlot,
  );
  load();
  return {};
}

// --- Webhooks (per user: a user's endpoints receive the events of that user's projects) ----

const EVENT_TYPES = ["project.created", "project.updated", "project.deleted"];
// While something is pending, or this long after an event or a redelivery, the open delivery
// log refreshes itself (a delivery is written by the fan-out shortly after its event).
const FOLLOW_MS = 60_000;
const POLL_MS = 2_000;

/**
 * The fields of an endpoint, for creating one and for editing one.
 * @param {{initial?: any, label: string, submit: string, message: any, onSubmit: (body: any) => Promise<unknown>, extra?: Node[]}} options
 */
function endpointForm({ initial, label, submit, message, onSubmit, extra = [] }) {
  const url = h("input", { type: "url", name: "url", required: true, maxlength: "2048", autocomplete: "off", value: initial?.url });
  const boxes = EVENT_TYPES.map((type) =>
    h("input", { type: "checkbox", name: "events", value: type, checked: initial ? initial.events.includes(type) : true }),
  );
  const description = h("input", { name: "description", maxlength: "500", value: initial?.description ?? "" });
  const button = h("button", { type: "submit" }, submit);
  return h(
    "form",
    {
      className: "card",
      "aria-label": label,
      onsubmit: async (event) => {
        event.preventDefault();
        message.clear();
        const body = {
          url: url.value.trim(),
          events: boxes.filter((box) => box.checked).map((box) => box.value),
          description: description.value.trim() || null,
        };
        try {
          await busy(button, onSubmit(body));
        } catch (error) {
          message.showError(error);
        }
      },
    },
    h("h2", {}, label),
    field("URL", url, "Where Keel POSTs each event, signed per Standard Webhooks."),
    h(
      "fieldset",
      { className: "events" },
      h("legend", {}, "Events"),
      boxes.map((box, i) => h("label", { className: "check" }, box, ` ${EVENT_TYPES[i]}`)),
    ),
    field("Description", description),
    h("div", { className: "actions" }, button, extra),
  );
}

function webhooksScreen() {
  const message = messageBox();
  const secretSlot = h("div");
  const editorSlot = h("div");
  const endpointsBody = h("tbody");
  const deliveriesSlot = h("div");
  /** @type {any} */
  let selected = null;

  const createForm = endpointForm({
    label: "New endpoint",
    submit: "Add endpoint",
    message,
    onSubmit: async (body) => {
      const { body: created } = await api.send("POST", "/api/v1/webhooks", { body });
      createForm.reset();
      await loadEndpoints();
      showSecret(created, `Endpoint ${created.url} added.`);
    },
  });

  /** The secret of a create or a rotation: on screen until dismissed, never fetched again. */
  function showSecret(endpoint, done) {
    const title = h("h2", { tabindex: "-1" }, "Signing secret");
    const stored = h("button", { type: "button" }, "I have stored it");
    const panel = h(
      "section",
      { className: "card secret-once", "aria-label": "Signing secret", "data-endpoint": endpoint.id },
      title,
      h("p", {}, `${done} Copy its signing secret now: Keel shows it only this once. Receivers verify the webhook-signature header with it.`),
      h("p", {}, h("code", { className: "secret", "data-secret": "" }, endpoint.secret)),
      stored,
    );
    stored.addEventListener("click", () => {
      secretSlot.replaceChildren();
      rowControl(endpoint.id, "deliveries")?.focus();
    });
    secretSlot.replaceChildren(panel);
    title.focus();
    announce(done);
  }

  /** @returns {HTMLElement | null} */
  function rowControl(id, action) {
    return endpointsBody.querySelector(`tr[data-id="${id}"] [data-action="${action}"]`);
  }

  function endpointRow(endpoint) {
    const hidden = h("span", { className: "visually-hidden" }, ` ${endpoint.url}`);
    const button = (action, text, attrs = {}) =>
      h("button", { type: "button", "data-action": action, ...attrs }, text, hidden.cloneNode(true));
    const deliveries = button("deliveries", "Deliveries", { onclick: () => select(endpoint) });
    const edit = button("edit", "Edit", { onclick: () => openEditor(endpoint) });
    const toggle = button("toggle", endpoint.isActive ? "Disable" : "Enable", {
      onclick: () => patch(endpoint, { isActive: !endpoint.isActive }, toggle, endpoint.isActive ? "disabled" : "enabled"),
    });
    const rotate = button("rotate", "Rotate secret");
    const remove = button("delete", "Delete", { className: "danger" });
    const actions = h("div", { className: "actions" }, deliveries, edit, toggle, rotate, remove);
    rotate.addEventListener("click", () =>
      confirmInPlace(actions, rotate, {
        question: `Replace the signing secret of ${endpoint.url}? The current one stops working at once.`,
        yes: "Yes, rotate",
        label: "Confirm rotation",
        message,
        run: async () => {
          const { body: rotated } = await api.send("POST", `/api/v1/webhooks/${endpoint.id}/rotate-secret`);
          await loadEndpoints();
          showSecret(rotated, `New secret for ${endpoint.url}.`);
        },
      }),
    );
    remove.addEventListener("click", () =>
      confirmInPlace(actions, remove, {
        question: `Delete the endpoint ${endpoint.url} and its delivery log? This cannot be undone.`,
        message,
        run: async () => {
          await api.send("DELETE", `/api/v1/webhooks/${endpoint.id}`);
          if (selected?.id === endpoint.id) select(null);
          if (secretSlot.querySelector(`[data-endpoint="${endpoint.id}"]`)) secretSlot.replaceChildren();
          announce(`Deleted ${endpoint.url}.`);
          await loadEndpoints();
          createForm.querySelector("input")?.focus();
        },
      }),
    );
    const state = endpoint.isActive
      ? h("span", { className: "badge active" }, "active")
      : h("span", {}, h("span", { className: "badge disabled" }, "disabled"), endpoint.disabledReason ? h("small", { className: "reason" }, ` ${endpoint.disabledReason}`) : null);
    return h(
      "tr",
      { "data-id": endpoint.id, className: selected?.id === endpoint.id ? "selected" : null, "aria-current": selected?.id === endpoint.id ? "true" : null },
      h("td", { "data-label": "URL" }, endpoint.url, endpoint.description ? h("div", { className: "meta" }, endpoint.description) : null),
      h("td", { "data-label": "Events" }, endpoint.events.join(", ")),
      h("td", { "data-label": "Status" }, state),
      h("td", {}, actions),
    );
  }

  async function patch(endpoint, body, control, done) {
    message.clear();
    try {
      await busy(control, api.send("PATCH", `/api/v1/webhooks/${endpoint.id}`, { body }));
      announce(`${endpoint.url} ${done}.`);
      await loadEndpoints();
      rowControl(endpoint.id, "toggle")?.focus();
    } catch (error) {
      message.showError(error);
    }
  }

  function openEditor(endpoint) {
    message.clear();
    const close = () => {
      editorSlot.replaceChildren();
      rowControl(endpoint.id, "edit")?.focus();
    };
    const cancel = h("button", { type: "button", onclick: close }, "Cancel");
    const form = endpointForm({
      initial: endpoint,
      label: `Edit ${endpoint.url}`,
      submit: "Save",
      message,
      extra: [cancel],
      onSubmit: async (body) => {
        await api.send("PATCH", `/api/v1/webhooks/${endpoint.id}`, { body });
        announce(`Saved ${body.url}.`);
        await loadEndpoints();
        close();
      },
    });
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") close();
    });
    editorSlot.replaceChildren(form);
    form.querySelector("input")?.focus();
  }

  const loadEndpoints = coalesced(async () => {
    try {
      const endpoints = (await api.get("/api/v1/webhooks")).data;
      endpointsBody.replaceChildren(...endpoints.map(endpointRow));
      if (!endpoints.length) endpointsBody.replaceChildren(h("tr", {}, h("td", { colspan: "4" }, "No endpoints yet: add the first one above.")));
      if (selected) {
        selected = endpoints.find((e) => e.id === selected.id) || null;
        if (selected) deliveriesTitle.textContent = `Deliveries to ${selected.url}`;
        else deliveriesSlot.replaceChildren();
      }
    } catch (error) {
      message.showError(error);
    }
  });

  // The delivery log of the selected endpoint.
  const deliveriesTitle = h("h2", { id: "deliveries-heading", tabindex: "-1" });
  const deliveriesBody = h("tbody");
  const deliveriesSummary = h("p", { className: "summary", "aria-live": "polite" });
  const refresh = h("button", { type: "button", onclick: () => busy(refresh, loadDeliveries()) }, "Refresh");
  const deliveriesSection = h(
    "section",
    { "aria-labelledby": "deliveries-heading" },
    deliveriesTitle,
    h("div", { className: "toolbar" }, deliveriesSummary, refresh),
    table(["Event", "Status", "Attempts", "Response", "Time", h("span", { className: "visually-hidden" }, "Actions")], deliveriesBody, "Delivery log"),
  );
  const openAttempts = new Set();
  let shown = "";
  let followUntil = 0;
  let timer = 0;

  function follow() {
    followUntil = Date.now() + FOLLOW_MS;
    schedule();
  }

  function schedule() {
    if (timer) return; // a steady stream of events must not keep postponing the refresh
    timer = window.setTimeout(async () => {
      timer = 0;
      if (!deliveriesSection.isConnected || !selected) return;
      await loadDeliveries();
    }, POLL_MS);
  }

  function deliveryRow(delivery) {
    const last = delivery.attempts.at(-1);
    const redeliver = h("button", { type: "button", "data-action": "redeliver" }, "Redeliver", h("span", { className: "visually-hidden" }, ` ${delivery.eventType} ${delivery.id}`));
    redeliver.addEventListener("click", async () => {
      message.clear();
      try {
        await busy(redeliver, api.send("POST", `/api/v1/webhooks/${selected.id}/deliveries/${delivery.id}/redeliver`));
        announce(`Redelivery of ${delivery.eventType} queued.`);
        follow();
        await loadDeliveries();
      } catch (error) {
        message.showError(error);
      }
    });
    const attempts = delivery.attempts.length
      ? h(
          "details",
          {
            open: openAttempts.has(delivery.id),
            ontoggle: (event) => (event.currentTarget.open ? openAttempts.add(delivery.id) : openAttempts.delete(delivery.id)),
          },
          h("summary", { "data-action": "attempts" }, String(delivery.attempts.length)),
          h(
            "ol",
            { className: "attempts" },
            delivery.attempts.map((a) => h("li", {}, `${formatTime(a.at)}: ${a.statusCode ?? "no answer"}${a.error ? ` (${a.error})` : ""}, ${a.durationMs} ms`)),
          ),
        )
      : "0";
    const next = delivery.status === "pending" && delivery.nextAttemptAt ? h("div", { className: "meta" }, `next try ${formatTime(delivery.nextAttemptAt)}`) : null;
    return h(
      "tr",
      { "data-id": delivery.id, "data-status": delivery.status },
      h("td", { "data-label": "Event" }, h("code", {}, delivery.eventType), h("div", { className: "meta" }, `event ${delivery.eventId}`)),
      h("td", { "data-label": "Status" }, h("span", { className: `badge ${delivery.status}` }, delivery.status), next),
      h("td", { "data-label": "Attempts" }, attempts),
      h("td", { "data-label": "Response" }, last ? String(last.statusCode ?? last.error ?? "—") : "—"),
      h("td", { "data-label": "Time" }, formatTime(last?.at ?? delivery.createdAt)),
      h("td", {}, redeliver),
    );
  }

  const loadDeliveries = coalesced(async () => {
    const endpoint = selected;
    if (!endpoint) return;
    let data;
    try {
      data = (await api.get(`/api/v1/webhooks/${endpoint.id}/deliveries`, { limit: 50 })).data;
    } catch (error) {
      message.showError(error);
      return;
    }
    if (selected?.id !== endpoint.id) return;
    const snapshot = JSON.stringify(data);
    if (snapshot !== shown) {
      shown = snapshot;
      // Rows are rebuilt: keep the keyboard where it was.
      const active = document.activeElement;
      const row = deliveriesBody.contains(active) ? active?.closest("tr")?.getAttribute("data-id") : null;
      const action = active?.getAttribute("data-action");
      deliveriesBody.replaceChildren(...data.map(deliveryRow));
      if (!data.length) deliveriesBody.replaceChildren(h("tr", {}, h("td", { colspan: "6" }, "No deliveries yet: they appear here once one of your projects changes.")));
      if (row && action) /** @type {HTMLElement | null} */ (deliveriesBody.querySelector(`tr[data-id="${row}"] [data-action="${action}"]`))?.focus();
      const failed = data.filter((d) => d.status === "failed").length;
      deliveriesSummary.textContent = `${data.length} deliver${data.length === 1 ? "y" : "ies"}, newest first${failed ? `; ${failed} failed` : ""}.`;
    }
    if (data.some((d) => d.status === "pending") || Date.now() < followUntil) schedule();
  });

  function select(endpoint) {
    selected = endpoint;
    shown = "";
    openAttempts.clear();
    clearTimeout(timer);
    timer = 0;
    for (const row of endpointsBody.querySelectorAll("tr[data-id]")) {
      const on = row.getAttribute("data-id") === endpoint?.id;
      row.classList.toggle("selected", on);
      if (on) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
    }
    if (!endpoint) {
      deliveriesSlot.replaceChildren();
      return;
    }
    deliveriesTitle.textContent = `Deliveries to ${endpoint.url}`;
    deliveriesBody.replaceChildren();
    deliveriesSummary.textContent = "Loading…";
    deliveriesSlot.replaceChildren(deliveriesSection);
    deliveriesTitle.focus();
    follow();
    loadDeliveries();
  }

  main.replaceChildren(
    heading("Webhooks"),
    h("p", {}, "Keel POSTs the events of your projects to these endpoints, signed per Standard Webhooks, and retries until they answer 2xx."),
    message,
    secretSlot,
    createForm,
    h(
      "section",
      { "aria-labelledby": "endpoints-heading" },
      h("h2", { id: "endpoints-heading" }, "Your endpoints"),
      table(["URL", "Events", "Status", h("span", { className: "visually-hidden" }, "Actions")], endpointsBody, "Webhook endpoints"),
    ),
    editorSlot,
    deliveriesSlot,
  );
  loadEndpoints();
  return {
    onEvent() {
      if (selected) follow();
    },
  };
}

// --- Shell --------------------------------------------------------------------------------

const SCREENS = {
  "#/projects": { title: "Projects", render: projectsScreen },
  "#/sessions": { title: "Sessions", render: sessionsScreen },
  "#/webhooks": { title: "Webhooks", render: webhooksScreen },
  "#/security": { title: "Security", render: securityScreen },
  "#/users": { title: "Users", render: usersScreen, admin: true },
  "#/audit": { title: "Audit log", render: auditScreen, admin: true },
};

function renderNav() {
  clear(nav);
  who.textContent = me ? `${me.name} (${me.role})` : "";
  if (!me) return;
  const links = Object.entries(SCREENS)
    .filter(([, screen]) => !screen.admin || me.role === "admin")
    .map(([hash, screen]) => h("li", {}, h("a", { href: hash, "aria-current": location.hash === hash ? "page" : false }, screen.title)));
  const signOut = h("button", { type: "button", className: "link" }, "Sign out");
  signOut.addEventListener("click", () => api.signOut().catch(() => api.setTokens(null)));
  nav.append(h("ul", {}, links, h("li", {}, signOut)));
}

function route() {
  const hash = location.hash || "#/projects";
  if (!me) {
    view = null;
    document.title = "Sign in · Keel";
    signInScreen();
    return;
  }
  const screen = SCREENS[hash] && (!SCREENS[hash].admin || me.role === "admin") ? SCREENS[hash] : SCREENS["#/projects"];
  document.title = `${screen.title} · Keel`;
  renderNav();
  view = screen.render();
  main.querySelector("h1")?.focus();
}

window.addEventListener("hashchange", route);
// The skip link moves focus without touching the hash the screens are routed by.
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

async function boot() {
  if (api.signedIn) {
    try {
      me = await api.get("/api/v1/auth/profile");
      live.start();
    } catch {
      api.setTokens(null);
      return;
    }
  }
  renderNav();
  route();
}

boot();

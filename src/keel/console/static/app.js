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
  const state = { page: 1, q: "", status: "", editing: null, pending: false };
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
        h("button", { type: "button", className: "danger", onclick: () => confirmDelete(project, card) }, "Delete", h("span", { className: "visually-hidden" }, ` ${project.name}`)),
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

  function confirmDelete(project, card) {
    const yes = h("button", { type: "button", className: "danger" }, "Yes, delete");
    const no = h("button", { type: "button" }, "Keep it");
    const prompt = h("div", { className: "confirm", role: "group", "aria-label": "Confirm deletion" }, h("p", {}, `Delete “${project.name}”? This cannot be undone.`), yes, no);
    const actions = card.querySelector(".actions");
    actions.replaceWith(prompt);
    no.addEventListener("click", () => {
      prompt.replaceWith(actions);
      actions.querySelector(".danger").focus();
    });
    yes.addEventListener("click", async () => {
      message.clear();
      try {
        await busy(yes, api.send("DELETE", `/api/v1/projects/${project.id}`));
        announce(`Deleted “${project.name}”.`);
        await load();
        q.focus();
      } catch (error) {
        message.showError(error);
      }
    });
    no.focus();
  }

  let loading = null;
  async function load() {
    if (loading) {
      state.pending = true;
      return loading;
    }
    loading = (async () => {
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
    })();
    try {
      await loading;
    } finally {
      loading = null;
    }
    if (state.pending) {
      state.pending = false;
      await load();
    }
  }

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

function webhooksScreen() {
  // PLACEHOLDER (webhooks issue): list endpoints, create/edit/delete, rotate secret, and each
  // endpoint's deliveries with redeliver, over /api/v1/webhooks (SPEC §10).
  main.replaceChildren(
    heading("Webhooks"),
    h(
      "section",
      { className: "card placeholder", "data-placeholder": "webhooks" },
      h("p", {}, h("strong", {}, "Not available yet."), " Outgoing webhooks (SPEC §10) are being built; this screen will list your endpoints and their deliveries."),
    ),
  );
  return {};
}

// --- Shell --------------------------------------------------------------------------------

const SCREENS = {
  "#/projects": { title: "Projects", render: projectsScreen },
  "#/sessions": { title: "Sessions", render: sessionsScreen },
  "#/security": { title: "Security", render: securityScreen },
  "#/users": { title: "Users", render: usersScreen, admin: true },
  "#/audit": { title: "Audit log", render: auditScreen, admin: true },
  "#/webhooks": { title: "Webhooks", render: webhooksScreen, admin: true },
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

// The web chat: one user of one provider in a browser tab. Everything it keeps
// (mailbox mark, KeyPackages, group states, history) is in localStorage, so a
// reload comes back where it was.
import { Member, MimidsClient, Remote, StorageMarkStore, WebStorage, toHex, type Group, type GroupEvent } from "../../src/index.js";

interface Config {
  user: string;
  userId: string;
  token: string;
  domain: string;
  providerUrls: Record<string, string>;
  users: string[];
}
interface Line {
  from: string;
  text: string;
  system?: boolean;
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const user = new URLSearchParams(location.search).get("user") ?? "alice";
const cfg = (await (await fetch(`/api/config?user=${encodeURIComponent(user)}`)).json()) as Config;
const abs = (p: string): string => new URL(p, location.href).href.replace(/\/$/, "");
const providerUrls = Object.fromEntries(Object.entries(cfg.providerUrls).map(([d, p]) => [d, abs(p)]));
const storage = new WebStorage(localStorage, `mimids:${cfg.userId}:`);
let member: Member | undefined;
let current: string | undefined;

$("me").textContent = cfg.userId;
for (const u of cfg.users.filter((x) => x !== cfg.userId)) {
  const o = document.createElement("option");
  o.value = u;
  $("people").append(o);
}

function history(gid: string): Line[] {
  return JSON.parse(localStorage.getItem(`chat:${cfg.userId}:${gid}`) ?? "[]") as Line[];
}
function append(gid: string, l: Line): void {
  const h = history(gid);
  h.push(l);
  localStorage.setItem(`chat:${cfg.userId}:${gid}`, JSON.stringify(h));
  if (gid === current) renderLine(l);
}
function renderLine(l: Line): void {
  const li = document.createElement("li");
  if (l.system) {
    li.className = "system";
    li.textContent = l.text;
  } else {
    const b = document.createElement("span");
    b.className = "from";
    b.textContent = `${l.from}: `;
    li.append(b, document.createTextNode(l.text));
  }
  $("messages").append(li);
  li.scrollIntoView();
}
function renderGroups(): void {
  const ul = $("groups");
  ul.replaceChildren();
  for (const [gid, g] of member?.groups ?? []) {
    const li = document.createElement("li");
    li.textContent = `${gid.slice(0, 8)} (${g.members().length})`;
    li.dataset.gid = gid;
    if (gid === current) li.className = "current";
    li.onclick = () => select(gid);
    ul.append(li);
  }
}
function select(gid: string): void {
  current = gid;
  $("messages").replaceChildren();
  history(gid).forEach(renderLine);
  const g = member?.groups.get(gid);
  $("group-title").textContent = g ? `· group ${gid.slice(0, 8)}: ${g.members().join(", ")}` : "";
  $<HTMLInputElement>("text").disabled = !g;
  $<HTMLButtonElement>("send").disabled = !g;
  $<HTMLButtonElement>("invite-btn").disabled = !g;
  renderGroups();
}

function onEvent(e: GroupEvent): void {
  if (e.type === "welcome_unusable") return;
  const gid = toHex(e.group.groupId);
  switch (e.type) {
    case "message":
      if (!e.own) append(gid, { from: e.sender, text: e.text });
      break;
    case "joined":
      append(gid, { from: "", text: `joined: ${e.group.members().join(", ")}`, system: true });
      if (!current) select(gid);
      break;
    case "epoch":
      append(gid, { from: "", text: `epoch ${e.epoch}: ${e.members.join(", ")}`, system: true });
      break;
    case "removed":
      append(gid, { from: "", text: "you were removed from this group", system: true });
      break;
    case "fork":
      append(gid, { from: "", text: `fork: ${e.detail}`, system: true });
      break;
    case "undecryptable":
      break;
  }
  renderGroups();
  if (gid === current) select(gid);
}

const client = new MimidsClient({
  url: `${abs(cfg.providerUrls[cfg.domain]).replace(/^http/, "ws")}/v1/socket`,
  token: cfg.token,
  marks: new StorageMarkStore(storage),
  onMailbox: async (e) => {
    while (!member) await new Promise((r) => setTimeout(r, 20));
    await member.handleMailbox(e);
  },
  onClose: (_e, again) => ($("status").textContent = again ? "reconnecting…" : "disconnected"),
  onSession: () => {
    $("status").textContent = "connected";
  },
});
const session = await client.connect();
const remote = new Remote({ baseUrl: providerUrls[cfg.domain], token: cfg.token, ownDomain: session.domain, providerUrls });
const m = await Member.create(client, remote, storage);
m.on(onEvent);
if ((await storage.keys("kp:")).length === 0) await m.publishKeyPackages(5, true);
member = m;
$("status").textContent = "connected";
$<HTMLButtonElement>("new-group").disabled = false;
renderGroups();
const first = [...m.groups.keys()][0];
if (first) select(first);

$("new-group").onclick = async () => {
  const g = await m.createGroup();
  const gid = toHex(g.groupId);
  append(gid, { from: "", text: `group created by ${cfg.userId}`, system: true });
  select(gid);
};
$("invite-btn").onclick = async () => {
  const g = current ? m.groups.get(current) : undefined;
  const who = $<HTMLInputElement>("invite").value.trim();
  if (!g || !who) return;
  try {
    const r = await g.add([who]);
    if (!r.won) append(current ?? "", { from: "", text: "the invite lost a race with another commit; try again", system: true });
    $<HTMLInputElement>("invite").value = "";
  } catch (err) {
    append(current ?? "", { from: "", text: `invite failed: ${String(err)}`, system: true });
  }
};
$<HTMLFormElement>("compose").onsubmit = async (ev) => {
  ev.preventDefault();
  const g: Group | undefined = current ? m.groups.get(current) : undefined;
  const input = $<HTMLInputElement>("text");
  const text = input.value;
  if (!g || !text) return;
  input.value = "";
  append(current ?? "", { from: cfg.userId, text });
  await g.send(text);
};
// For tests and the curious: the SDK objects of this page.
(globalThis as { mimids?: unknown }).mimids = { client, member: m };
document.body.dataset.ready = "1";

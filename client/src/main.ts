// The page: a join form (or ?room=&name=), the composite in #mixed, participants, controls, chat.
import { Call, type LayoutKind, type Participant, type Quality, type RoomLayout } from "./call.ts";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const q = new URLSearchParams(location.search);
let call: Call | undefined;

function el(tag: string, text: string, cls?: string): HTMLElement {
  const e = document.createElement(tag);
  e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

let shown: { list: Participant[]; room: RoomLayout } = { list: [], room: { layout: "grid", pinned: null, activeSpeaker: null } };

/** Speaking changes come on their own: the list is drawn again with them. */
function showSpeakers(speaking: string[], activeSpeaker: string | null): void {
  const list = shown.list.map((p) => ({ ...p, speaking: speaking.includes(p.id) }));
  showParticipants(list, { ...shown.room, activeSpeaker });
}

function showParticipants(list: Participant[], room: RoomLayout): void {
  shown = { list, room };
  const moderator = !!call?.rights.includes("moderate");
  $("layout-select").hidden = !moderator;
  $<HTMLSelectElement>("layout-select").value = room.layout === "pinned" ? "grid" : room.layout;
  $("participants").replaceChildren(
    ...list.map((p) => {
      const li = el("li", p.name + (p.id === call?.participantId ? " (you)" : ""));
      li.dataset.id = p.id;
      li.classList.toggle("speaking", !!p.speaking);
      for (const flag of participantFlags(p)) li.append(el("span", ` · ${flag}`, "flag"));
      if (p.rung) li.append(el("span", ` · ${p.rung.split("x")[1]}p`, "flag rung"));
      if (room.layout === "pinned" && room.pinned === p.id) li.append(el("span", " · pinned", "flag pinned"));
      if (p.speaking) li.append(el("span", " · speaking", "flag speaking"));
      if (moderator && p.tile) li.append(pinButton(p, room));
      if (moderator && p.id !== call?.participantId) li.append(...moderatorButtons(p));
      return li;
    }),
  );
}

/** A moderator pins someone large in everyone's composite (or unpins: back to the grid). */
function pinButton(p: Participant, room: RoomLayout): HTMLElement {
  const pinned = room.layout === "pinned" && room.pinned === p.id;
  const b = el("button", pinned ? "Unpin" : "Pin", "mod");
  b.dataset.action = "pin";
  b.onclick = () => call?.setLayout(pinned ? "grid" : "pinned", pinned ? undefined : p.id);
  return b;
}

async function fillDevices(): Promise<void> {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [kind, id] of [["audioinput", "mic-select"], ["videoinput", "cam-select"]] as const) {
    const current = call?.local?.getTracks().find((t) => (kind === "audioinput" ? t.kind === "audio" : t.kind === "video"))?.getSettings().deviceId;
    $(id).replaceChildren(
      ...devices.filter((d) => d.kind === kind).map((d, i) => {
        const o = el("option", d.label || `${kind === "audioinput" ? "Microphone" : "Camera"} ${i + 1}`) as HTMLOptionElement;
        o.value = d.deviceId;
        o.selected = d.deviceId === current;
        return o;
      }),
    );
  }
}

/** A moderator's controls beside someone in the list: mute (or let back) in the mix, and remove. */
function moderatorButtons(p: Participant): HTMLElement[] {
  const mute = el("button", p.moderated ? "Unmute" : "Mute", "mod");
  mute.dataset.action = "mute";
  mute.onclick = () => call?.moderate("mute", p.id, !p.moderated);
  const kick = el("button", "Remove", "mod");
  kick.dataset.action = "kick";
  kick.onclick = () => call?.moderate("kick", p.id);
  return [mute, kick];
}

/** How someone takes part, in words: joining, watching, no mic, muted, no camera, camera off. */
function participantFlags(p: Participant): string[] {
  if (!p.sends) return ["joining"];
  if (!p.sends.audio && !p.sends.video) return ["watching"];
  if (p.moderated) return ["muted by a moderator"];
  return [
    !p.sends.audio ? "no mic" : !p.audio ? "muted" : "",
    !p.sends.video ? "no camera" : !p.video ? "camera off" : "",
  ].filter(Boolean);
}

const asked = q.get("quality");
const startQuality: Quality = asked === "high" || asked === "low" ? asked : "auto";
$<HTMLInputElement>("data-saver").checked = startQuality === "low";

function start(room: string, name: string, mode: "call" | "watch"): void {
  $("join").hidden = true;
  $("call").hidden = false;
  $("room-name").textContent = room;
  call = new Call(
    {
      room,
      name,
      transport: q.get("transport") === "longpoll" ? "longpoll" : "auto",
      iceTransportPolicy: q.get("ice") === "relay" ? "relay" : "all",
      audioProcessing: q.get("processing") !== "off",
      mode,
      token: q.get("token") ?? undefined,
      videoCodec: q.get("codec") === "h264" || q.get("codec") === "vp8" ? (q.get("codec") as "h264" | "vp8") : undefined,
      quality: startQuality,
    },
    {
      state: (t) => {
        $("state").textContent = t;
        $("end-room").hidden = !call?.rights.includes("moderate") || t === "ended" || t === "left";
      },
      error: (t) => ($("error").textContent = t),
      participants: showParticipants,
      speakers: showSpeakers,
      recording: (info, canRecord) => {
        // Everyone sees that the room is recorded; the button is there only where allowed.
        $("rec").hidden = !info;
        if (info) $("rec").title = `Recording since ${new Date(info.startedAt).toLocaleTimeString()}`;
        $("record").hidden = !canRecord;
        $("record").textContent = info ? "Stop recording" : "Record";
      },
      chat: (m) => {
        const line = el("li", "");
        line.append(el("b", m.name + ": "), document.createTextNode(m.text));
        line.title = new Date(m.ts).toLocaleTimeString();
        $("chat-log").append(line);
        line.scrollIntoView({ block: "nearest" });
      },
      devices: (has, notice, canRetry) => {
        // Controls only for what this device sends; the notice says why something is missing.
        $("mute").hidden = $("mic-select").hidden = !has.audio;
        $("camera").hidden = $("cam-select").hidden = !has.video;
        $("selfview").parentElement!.hidden = !has.video;
        $("notice").hidden = !notice;
        $("notice-text").textContent = notice;
        $("retry-devices").hidden = !canRetry;
      },
      stream: (s) => {
        const v = $<HTMLVideoElement>("mixed");
        if (v.srcObject === s) return;
        v.srcObject = s;
        // Join → first composite frame on screen, for the page's own figures (and the tests).
        const shown = () => call && call.joinSentAt !== undefined && (call.firstFrameMs = performance.now() - call.joinSentAt);
        const rvfc = (v as HTMLVideoElement & { requestVideoFrameCallback?: (cb: () => void) => void }).requestVideoFrameCallback;
        if (rvfc) rvfc.call(v, shown);
        else v.addEventListener("loadeddata", shown, { once: true });
      },
    },
  );
  (window as any).mixroom = call; // for debugging and the browser tests
  void call.start().then(fillDevices);
}

$("join").onsubmit = (e) => {
  e.preventDefault();
  start($<HTMLInputElement>("room").value, $<HTMLInputElement>("name").value, $<HTMLInputElement>("watch-only").checked ? "watch" : "call");
};
$("retry-devices").onclick = () => void call?.retryDevices().then(fillDevices);
$("mute").onclick = async () => {
  await call?.setMic(!call.micOn);
  $("mute").textContent = call?.micOn ? "Mute" : "Unmute";
};
$("camera").onclick = async () => {
  await call?.setCamera(!call.camOn);
  $("camera").textContent = call?.camOn ? "Camera off" : "Camera on";
};
$("record").onclick = () => call?.setRecording(!call.recording);
$("end-room").onclick = () => call?.moderate("end");
$("layout-select").onchange = () => call?.setLayout($<HTMLSelectElement>("layout-select").value as LayoutKind);
$("data-saver").onchange = () => call?.setQuality($<HTMLInputElement>("data-saver").checked ? "low" : "auto");
$("selfview").onchange = () => {
  const v = $<HTMLVideoElement>("self");
  const on = $<HTMLInputElement>("selfview").checked;
  v.hidden = !on;
  v.srcObject = on ? (call?.local ?? null) : null; // no local decode unless asked for
};
$("mic-select").onchange = () => void call?.useDevice("audio", $<HTMLSelectElement>("mic-select").value);
$("cam-select").onchange = () => void call?.useDevice("video", $<HTMLSelectElement>("cam-select").value);
$("leave").onclick = () => {
  call?.leave();
  $("mixed").hidden = true;
};
$("chat-form").onsubmit = (e) => {
  e.preventDefault();
  const input = $<HTMLInputElement>("chat-input");
  if (call?.sendChat(input.value)) input.value = "";
};

const room = q.get("room");
const name = q.get("name");
if (room && name) start(room, name, q.get("mode") === "watch" ? "watch" : "call");

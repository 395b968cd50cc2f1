// The page: a join form (or ?room=&name=), the composite in #mixed, participants, controls, chat.
import { Call, type Participant } from "./call.ts";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const q = new URLSearchParams(location.search);
let call: Call | undefined;

function el(tag: string, text: string, cls?: string): HTMLElement {
  const e = document.createElement(tag);
  e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function showParticipants(list: Participant[]): void {
  $("participants").replaceChildren(
    ...list.map((p) => {
      const li = el("li", p.name + (p.id === call?.participantId ? " (you)" : ""));
      li.dataset.id = p.id;
      if (!p.audio) li.append(el("span", " · muted", "flag"));
      if (!p.video) li.append(el("span", " · camera off", "flag"));
      return li;
    }),
  );
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

function start(room: string, name: string): void {
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
    },
    {
      state: (t) => ($("state").textContent = t),
      error: (t) => ($("error").textContent = t),
      participants: showParticipants,
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
      stream: (s) => {
        const v = $<HTMLVideoElement>("mixed");
        if (v.srcObject !== s) v.srcObject = s;
      },
    },
  );
  (window as any).mixroom = call; // for debugging and the browser tests
  void call.start().then(fillDevices);
}

$("join").onsubmit = (e) => {
  e.preventDefault();
  start($<HTMLInputElement>("room").value, $<HTMLInputElement>("name").value);
};
$("mute").onclick = async () => {
  await call?.setMic(!call.micOn);
  $("mute").textContent = call?.micOn ? "Mute" : "Unmute";
};
$("camera").onclick = async () => {
  await call?.setCamera(!call.camOn);
  $("camera").textContent = call?.camOn ? "Camera off" : "Camera on";
};
$("record").onclick = () => call?.setRecording(!call.recording);
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
if (room && name) start(room, name);

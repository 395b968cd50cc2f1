// Minimal browser client: joins a room over /ws, sends camera + mic with addTrack, plays the
// one composite video + mix-minus audio it gets back. (The full client is a later issue.)
const $ = (id) => document.getElementById(id);
let ws, pc;

function show(state) { $("state").textContent = state; }
function fail(msg) { $("error").textContent = msg; }

async function join(room, name) {
  fail("");
  let media;
  try {
    media = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360 } });
  } catch (e) {
    return fail(`Camera or microphone unavailable: ${e.message}`);
  }
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.onerror = () => fail("Cannot reach the server.");
  ws.onclose = () => show("disconnected");
  ws.onopen = () => ws.send(JSON.stringify({ type: "join", room, name }));
  ws.onmessage = async (ev) => {
    const m = JSON.parse(ev.data);
    if (m.type === "joined") {
      show("joined, connecting media…");
      pc = new RTCPeerConnection({ iceServers: m.iceServers, bundlePolicy: "max-bundle" });
      const early = [];
      let offerSent = false;
      pc.onicecandidate = (e) => {
        const c = e.candidate ? e.candidate.toJSON() : null;
        if (offerSent) ws.send(JSON.stringify({ type: "candidate", candidate: c }));
        else early.push(c);
      };
      pc.onconnectionstatechange = () => show(pc.connectionState);
      const mixed = new MediaStream();
      $("mixed").srcObject = mixed;
      pc.ontrack = (e) => mixed.addTrack(e.track);
      for (const t of media.getTracks()) pc.addTrack(t, media);
      await pc.setLocalDescription(await pc.createOffer());
      ws.send(JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }));
      offerSent = true;
      for (const c of early) ws.send(JSON.stringify({ type: "candidate", candidate: c }));
      $("leave").hidden = false;
    } else if (m.type === "answer") {
      await pc.setRemoteDescription({ type: "answer", sdp: m.sdp });
    } else if (m.type === "candidate" && m.candidate) {
      await pc.addIceCandidate(m.candidate).catch(() => {});
    } else if (m.type === "participants") {
      $("participants").replaceChildren(...m.participants.map((p) => Object.assign(document.createElement("li"), { textContent: p.name })));
    } else if (m.type === "error") {
      fail(`Server: ${m.message}`);
    }
  };
}

$("join").onsubmit = (e) => {
  e.preventDefault();
  join($("room").value, $("name").value);
};
$("leave").onclick = () => {
  ws?.send(JSON.stringify({ type: "leave" }));
  pc?.close();
  ws?.close();
  $("leave").hidden = true;
  show("left");
};
const q = new URLSearchParams(location.search);
if (q.get("room") && q.get("name")) join(q.get("room"), q.get("name"));

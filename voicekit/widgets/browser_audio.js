// vk.BrowserAudio front-end: the microphone and speaker of the page, for a kernel elsewhere.
//
// Capture: getUserMedia -> AudioWorklet tap -> (main thread) low-pass + resample from the
// context's rate to 24 kHz -> int16 -> 50 ms chunks sent to the kernel as binary buffers,
// each stamped with its first sample's index on the page's capture clock (24 kHz frames
// since capture started), so the kernel can place it even when it arrives late.
// Playback: agent audio (24 kHz int16 buffers) is resampled to the context's rate and
// queued in a playback worklet; the worklet counts what it has played, per reply, and the
// page reports those counts to the kernel (every ~50 ms) so agent audio is timed when heard.
// Nothing here ever sees the agent's URL or key: the connection stays in the kernel.

const RATE = 24000;

const WORKLETS = `
class VkCapture extends AudioWorkletProcessor {
  // batches 8 render quanta (~21 ms) per message: a message per 128-frame quantum
  // (~350 a second) costs the page more than the audio work itself
  constructor() { super(); this.buf = new Float32Array(1024); this.n = 0; }
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (ch) {
      this.buf.set(ch, this.n);
      this.n += ch.length;
      if (this.n + 128 > this.buf.length) {
        this.port.postMessage(this.buf.slice(0, this.n));
        this.n = 0;
      }
    }
    return true;
  }
}
class VkPlayer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = [];   // [{id, data: Float32Array (context rate), pos, ratio}]
    this.played = {};  // reply id -> 24 kHz samples played
    this.since = 0;
    this.dirty = false;
    this.port.onmessage = (e) => {
      const m = e.data;
      if (m.type === "audio") this.queue.push({ id: m.id, data: m.data, pos: 0, ratio: m.ratio });
      else if (m.type === "flush") { this.queue = []; this.report(true); }
    };
  }
  report(force) {
    // every ~50 ms while something plays; nothing while silent
    if (force || (this.dirty && this.since >= sampleRate / 20)) {
      this.port.postMessage({ played: this.played, queued: this.queue.length });
      this.since = 0;
      this.dirty = false;
    }
  }
  process(inputs, outputs) {
    const out = outputs[0][0];
    let i = 0;
    while (i < out.length && this.queue.length) {
      const q = this.queue[0];
      const n = Math.min(out.length - i, q.data.length - q.pos);
      out.set(q.data.subarray(q.pos, q.pos + n), i);
      q.pos += n; i += n;
      this.played[q.id] = (this.played[q.id] || 0) + n / q.ratio;
      this.dirty = true;
      if (q.pos >= q.data.length) this.queue.shift();
    }
    for (; i < out.length; i++) out[i] = 0;
    this.since += out.length;
    this.report(false);
    return true;
  }
}
registerProcessor("vk-capture", VkCapture);
registerProcessor("vk-player", VkPlayer);
`;

// Resample mono float audio by linear interpolation after a one-pole low-pass (enough for
// speech going to a recogniser; the low-pass keeps 44.1/48 kHz -> 24 kHz from aliasing).
class Resampler {
  constructor(from, to) {
    this.step = from / to;
    this.pos = 0;
    this.prev = 0;
    this.lp = 0;
    this.alpha = from > to ? Math.min(1, (2 * Math.PI * 0.45 * to) / from) : 1;
  }
  push(input) {
    const out = [];
    for (let i = 0; i < input.length; i++) {
      this.lp += this.alpha * (input[i] - this.lp);
      const x = this.lp;
      while (this.pos <= 1) {
        out.push(this.prev + (x - this.prev) * this.pos);
        this.pos += this.step;
      }
      this.pos -= 1;
      this.prev = x;
    }
    return Float32Array.from(out);
  }
}

function html(tag, attrs = {}, text = "") {
  const el = document.createElement(tag);
  Object.assign(el, attrs);
  if (text) el.textContent = text;
  return el;
}

function initialize({ model }) {
  // per-widget page state lives in this closure (not on the model)
  const st = {
    ctx: null, stream: null, capture: null, player: null, source: null,
    resampler: null, pending: [], frames: 0, level: -120, played: {}, sentPlayed: {},
    running: false, views: new Set(),
  };

  const setStatus = (status, error = "") => {
    model.set("status", status);
    model.set("error", error);
    model.save_changes();
    for (const v of st.views) v();
  };

  const fail = (code, message) => {
    setStatus("error", message);
    model.send({ type: "error", code, message });
  };

  async function ensureContext() {
    if (!st.ctx) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) throw Object.assign(new Error("this browser has no Web Audio"), { code: "no_webaudio" });
      st.ctx = new Ctx();
      const url = URL.createObjectURL(new Blob([WORKLETS], { type: "application/javascript" }));
      await st.ctx.audioWorklet.addModule(url);
      st.player = new AudioWorkletNode(st.ctx, "vk-player", { numberOfInputs: 0, outputChannelCount: [1] });
      st.player.connect(st.ctx.destination);
      st.player.port.onmessage = (e) => {
        const played = e.data.played;
        const delta = {};
        let any = false;
        for (const id in played) {
          const n = Math.floor(played[id]) - (st.sentPlayed[id] || 0);
          if (n > 0) { delta[id] = n; any = true; st.sentPlayed[id] = Math.floor(played[id]); }
        }
        st.played = played;
        if (any) {
          model.send({ type: "played", played: delta, ctx_time: st.ctx.currentTime });
          for (const v of st.views) v();
        }
      };
    }
    if (st.ctx.state === "suspended") await st.ctx.resume();
    if (st.ctx.state !== "running") {
      throw Object.assign(new Error("the page may not play sound yet: click 'Enable audio' in the widget"), { code: "suspended" });
    }
  }

  async function start() {
    st.running = true;
    try {
      if (!window.isSecureContext) {
        throw Object.assign(new Error("the microphone needs https:// or localhost; open Jupyter over https"), { code: "insecure_context" });
      }
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        throw Object.assign(new Error("this browser gives no microphone access (navigator.mediaDevices is missing)"), { code: "no_device" });
      }
      await ensureContext();
      const audio = {
        echoCancellation: model.get("echo_cancellation"),
        noiseSuppression: model.get("noise_suppression"),
        autoGainControl: model.get("auto_gain_control"),
        channelCount: 1,
      };
      const device = model.get("device_id");
      if (device) audio.deviceId = { exact: device };
      try {
        st.stream = await navigator.mediaDevices.getUserMedia({ audio });
      } catch (err) {
        const code = err.name === "NotAllowedError" ? "permission_denied"
          : err.name === "NotFoundError" || err.name === "OverconstrainedError" ? "no_device" : "capture_failed";
        const hint = code === "permission_denied" ? "allow the microphone for this site (the icon in the address bar), then Start again"
          : code === "no_device" ? "plug in a microphone or choose another device" : String(err);
        throw Object.assign(new Error(hint), { code });
      }
      st.source = st.ctx.createMediaStreamSource(st.stream);
      st.capture = new AudioWorkletNode(st.ctx, "vk-capture", { numberOfOutputs: 0 });
      st.resampler = new Resampler(st.ctx.sampleRate, RATE);
      st.pending = [];
      st.frames = 0;
      st.capture.port.onmessage = (e) => onCapture(e.data);
      st.source.connect(st.capture);
      const label = st.stream.getAudioTracks()[0]?.label || "microphone";
      model.send({ type: "started", rate: st.ctx.sampleRate, device: label });
      setStatus("capturing");
      listDevices();
    } catch (err) {
      st.running = false;
      fail(err.code || "capture_failed", err.message || String(err));
    }
  }

  function stopCapture() {
    st.running = false;
    if (st.source) st.source.disconnect();
    if (st.capture) { st.capture.port.onmessage = null; st.capture.disconnect(); }
    if (st.stream) for (const t of st.stream.getTracks()) t.stop();
    st.source = st.capture = st.stream = null;
    if (st.player) st.player.port.postMessage({ type: "flush" });
    // an idle context still runs its audio thread: suspend it until the next start
    if (st.ctx && st.ctx.state === "running") st.ctx.suspend();
    setStatus("stopped");
  }

  function onCapture(block) {
    st.blockWall = performance.timeOrigin + performance.now();
    let sum = 0;
    for (let i = 0; i < block.length; i++) sum += block[i] * block[i];
    const db = 10 * Math.log10(sum / block.length + 1e-12);
    st.level = Math.max(-120, db);
    const muted = model.get("muted");
    const out = st.resampler.push(block);
    for (let i = 0; i < out.length; i++) st.pending.push(muted ? 0 : out[i]);
    // chunk_ms: each message to the kernel costs the page a kernel busy/idle round
    // (JupyterLab redraws its kernel status), so fewer, longer chunks cost less CPU
    const CHUNK = Math.round((RATE * model.get("chunk_ms")) / 1000);
    while (st.pending.length >= CHUNK) {
      const pcm = new Int16Array(CHUNK);
      for (let i = 0; i < CHUNK; i++) {
        const v = Math.max(-1, Math.min(1, st.pending[i]));
        pcm[i] = v < 0 ? v * 32768 : v * 32767;
      }
      st.pending.splice(0, CHUNK);
      // wall: when this chunk's last sample was captured (ms since the epoch, the
      // machine's clock), for the kernel's mic -> kernel latency figures
      model.send({ type: "audio", frame: st.frames, wall: st.blockWall }, undefined, [pcm.buffer]);
      st.frames += CHUNK;
    }
  }

  function play(id, view) {
    if (!st.ctx || !st.player) return;
    const pcm = new Int16Array(view.buffer, view.byteOffset, view.byteLength / 2);
    const rate = st.ctx.sampleRate;
    const ratio = rate / RATE;
    const r = new Resampler(RATE, rate);
    const f = new Float32Array(pcm.length);
    for (let i = 0; i < pcm.length; i++) f[i] = pcm[i] / 32768;
    const data = r.push(f);
    st.player.port.postMessage({ type: "audio", id, data, ratio }, [data.buffer]);
  }

  async function listDevices() {
    try {
      const all = await navigator.mediaDevices.enumerateDevices();
      const inputs = all.filter((d) => d.kind === "audioinput").map((d) => [d.label || d.deviceId, d.deviceId]);
      model.set("devices", inputs);
      model.save_changes();
    } catch (_) { /* no devices listed: the default one is used */ }
  }

  model.on("msg:custom", (msg, buffers) => {
    if (msg.type === "start") start();
    else if (msg.type === "stop") stopCapture();
    else if (msg.type === "audio") play(msg.id, buffers[0]);
    else if (msg.type === "flush") { if (st.player) st.player.port.postMessage({ type: "flush" }); }
    else if (msg.type === "ping") model.send({ type: "pong", t: msg.t });
  });

  return { st, start, ensureContext };
}

// the page state of each widget, by its id: anywidget hands initialize() and render()
// different model objects, so the model itself cannot be the key
const STATE = new Map();

function render({ model, el }) {
  const api = STATE.get(model.get("_vk_id"));
  const box = html("div", { className: "vk-browser-audio" });
  box.style.cssText = "font-family:sans-serif;font-size:13px;display:flex;gap:12px;align-items:center;padding:4px 0";
  const status = html("span", { className: "vk-ba-status" });
  const meter = html("meter", { className: "vk-ba-level", min: -60, max: 0, value: -60 });
  meter.style.width = "120px";
  const played = html("span", { className: "vk-ba-played" });
  const enable = html("button", { className: "vk-ba-enable" }, "Enable audio");
  const mute = html("label", {}, "");
  const muteBox = html("input", { type: "checkbox", className: "vk-ba-mute" });
  mute.append(muteBox, document.createTextNode(" mute"));
  const picker = html("select", { className: "vk-ba-device", title: "microphone" });
  box.append(html("b", {}, "browser audio"), status, meter, mute, picker, played, enable);
  const fillDevices = () => {
    const devices = model.get("devices") || [];
    picker.replaceChildren(html("option", { value: "" }, "default microphone"),
      ...devices.map(([label, id]) => html("option", { value: id }, label)));
    picker.value = model.get("device_id") || "";
    picker.style.display = devices.length > 1 ? "" : "none";
  };
  picker.onchange = () => { model.set("device_id", picker.value); model.save_changes(); };
  model.on("change:devices", fillDevices);
  fillDevices();
  el.append(box);

  muteBox.checked = model.get("muted");
  muteBox.onchange = () => { model.set("muted", muteBox.checked); model.save_changes(); };
  // a click is the user gesture browsers want before a page may play sound
  enable.onclick = () => api.ensureContext().then(draw, (err) => { status.textContent = err.message; });

  const draw = () => {
    const s = model.get("status");
    const err = model.get("error");
    status.textContent = err ? `${s}: ${err}` : s;
    status.style.color = s === "error" ? "#d62728" : s === "capturing" ? "#2ca02c" : "#555";
    const total = Object.values(api.st.played).reduce((a, b) => a + b, 0) / RATE;
    played.textContent = `agent audio played ${total.toFixed(1)} s`;
    played.dataset.samples = String(Math.floor(total * RATE));
    enable.style.display = api.st.ctx && api.st.ctx.state === "running" ? "none" : "";
  };
  model.on("change:status", draw);
  model.on("change:error", draw);
  api.st.views.add(draw);
  draw();
  // the meter moves at 5 Hz and only by whole dB: every repaint of a big notebook costs
  let shown = -60;
  const timer = setInterval(() => {
    const v = Math.round(Math.max(-60, api.st.level));
    if (v !== shown) { meter.value = shown = v; }
  }, 200);
  return () => { clearInterval(timer); api.st.views.delete(draw); };
}

export default {
  initialize(ctx) {
    const id = ctx.model.get("_vk_id");
    STATE.set(id, initialize(ctx));
    return () => STATE.delete(id);
  },
  render,
};

import os from "node:os";
import path from "node:path";
import ffmpegInstaller from "@ffmpeg-installer/ffmpeg";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../server/config.ts";

function expectConfigError(env: NodeJS.ProcessEnv, name: string): void {
  let err: unknown;
  try {
    loadConfig(env);
  } catch (e) {
    err = e;
  }
  expect(err, `${JSON.stringify(env)} should throw`).toBeInstanceOf(ConfigError);
  expect((err as Error).message).toContain(name);
}

describe("loadConfig defaults", () => {
  it("uses the documented defaults for an empty environment", () => {
    expect(loadConfig({})).toEqual({
      port: 8080,
      host: "0.0.0.0",
      width: 1280,
      height: 720,
      fps: 30,
      videoKbps: 1500,
      audioKbps: 32,
      vp8CpuUsed: -8,
      keyframeIntervalS: 10,
      keyframeMinIntervalMs: 500,
      stallTimeoutMs: 1500,
      labels: true,
      layout: "grid",
      speakerHoldMs: 1500,
      speakerMinSwitchMs: 3000,
      rtcPortRange: undefined,
      announcedIp: undefined,
      iceServers: [],
      stunUrls: [],
      turnUrls: [],
      turnSecret: undefined,
      turnTtlS: 86_400,
      iceExtraHosts: [],
      ffmpegPath: ffmpegInstaller.path,
      ffmpegSpawn: "host",
      opusEngine: "inprocess",
      videoEngine: "library",
      rtpSender: "lean",
      mediaWorkers: "auto",
      logLevel: "info",
      maxMessageBytes: 64 * 1024,
      maxParticipants: 16,
      recordingsDir: path.resolve("recordings"),
      redisUrl: undefined,
      queuePrefix: "mixroom",
      apiToken: undefined,
      postprocessWorker: true,
      clientRecording: true,
      recordingAudioKbps: 64,
      recordingMp4: true,
      jobAttempts: 5,
      jobBackoffMs: 2000,
      jobLockMs: 30_000,
      videoCodecs: ["vp8", "h264"],
      outputRungs: [{ width: 1280, height: 720, kbps: 1500 }, { width: 640, height: 360, kbps: 530 }, { width: 320, height: 180, kbps: 188 }],
      maxRooms: 32,
      maxParticipantsTotal: 64,
      maxConnectionsPerIp: 32,
      maxJoinsPerIp: 24,
      maxRoomsPerIp: 4,
      maxConcurrentOffers: 2,
      maxSdpMediaSections: 8,
      maxSdpLines: 1000,
      joinOfferTimeoutMs: 20_000,
      maxRemoteCandidates: 32,
      stunPerSecond: 50,
      retransmitPerSecond: 100,
      rtcpPerSecond: 200,
      rtpMaxPacketBytes: 1500,
      dataChannelKbps: 128,
      rtpMaxExtensionBytes: 256,
      decode: { maxFramePixels: 1920 * 1080, pixelsPerSecond: 1920 * 1080 * 30, bitsPerSecond: 4_000_000, oversizeIntervalMs: 5000, resizeIntervalMs: 1000 },
      decodeAddressPixelsPerSecond: 2 * 1920 * 1080 * 30,
      decodeServerPixelsPerSecond: 60e6 * os.availableParallelism(),
      decodeAddressShare: 2,
      ingressKbps: 8000,
      maxBufferedBytes: 1024 * 1024,
      longPollWindow: 32,
      wsPingMs: 15_000,
      authSecret: undefined,
      tokenTtlS: 3600,
      publicApi: false,
      trustedProxies: expect.any(Function),
      nodeUrl: undefined,
      nodeMaxCpu: 0.8,
      overloadCpu: 0.85,
      stillFps: 1,
      nodeMaxParticipants: 64,
      nodeHeartbeatMs: 1000,
      nodeTtlMs: 3000,
      clusterPrefix: "mixroom",
      maxRecordings: 4,
      recordingsMinFreeMb: 1024,
    });
  });

  it("refuses a TRUSTED_PROXIES entry that is not an address or range", () => {
    expect(loadConfig({ TRUSTED_PROXIES: "10.0.0.0/8, 192.0.2.7" }).trustedProxies("10.1.2.3")).toBe(true);
    for (const bad of ["10.0.0.0/33", "nonsense/8"]) expectConfigError({ TRUSTED_PROXIES: bad }, "TRUSTED_PROXIES");
  });

  it("reads the decode budget and refuses a frame size that is not one", () => {
    const c = loadConfig({ DECODE_MAX_FRAME: "1280x720", DECODE_MAX_FPS: "60", DECODE_MAX_KBPS: "2000", DECODE_ADDRESS_SHARE: "4" });
    expect(c.decode).toMatchObject({ maxFramePixels: 1280 * 720, pixelsPerSecond: 1280 * 720 * 60, bitsPerSecond: 2_000_000 });
    expect(c).toMatchObject({ decodeAddressPixelsPerSecond: 4 * 1280 * 720 * 60, ingressKbps: 4000 });
    for (const bad of ["big", "1920", "8x8", "100000x100000"]) expectConfigError({ DECODE_MAX_FRAME: bad }, "DECODE_MAX_FRAME");
  });

  it("reads the node settings (several nodes) and refuses what cannot work", () => {
    const c = loadConfig({ REDIS_URL: "redis://r:6379", NODE_URL: "http://10.0.0.5:8080/", NODE_MAX_CPU: "0.5", NODE_MAX_PARTICIPANTS: "40", CLUSTER_PREFIX: "eu" });
    expect(c).toMatchObject({ nodeUrl: "http://10.0.0.5:8080", nodeMaxCpu: 0.5, nodeMaxParticipants: 40, clusterPrefix: "eu" });
    expect(loadConfig({ MAX_PARTICIPANTS_TOTAL: "30" }).nodeMaxParticipants).toBe(30);
    expectConfigError({ NODE_URL: "http://10.0.0.5:8080" }, "REDIS_URL"); // nodes find each other in Redis
    for (const bad of ["10.0.0.5:8080", "ws://10.0.0.5", "http://10.0.0.5/x", "nonsense"]) expectConfigError({ REDIS_URL: "redis://r", NODE_URL: bad }, "NODE_URL");
    for (const bad of ["0", "1.5", "-0.2", "most"]) expectConfigError({ NODE_MAX_CPU: bad }, "NODE_MAX_CPU");
    expectConfigError({ NODE_HEARTBEAT_MS: "1000", NODE_TTL_MS: "1500" }, "NODE_TTL_MS");
    expect(loadConfig({ VP8_CPU_USED: "8" }).vp8CpuUsed).toBe(8);
    for (const bad of ["17", "-17", "fast"]) expectConfigError({ VP8_CPU_USED: bad }, "VP8_CPU_USED");
  });

  it("reads the recording settings and refuses nonsense", () => {
    const c = loadConfig({ RECORDINGS_DIR: "/srv/rec", REDIS_URL: "redis://r:6379/2", POSTPROCESS_WORKER: "off", CLIENT_RECORDING: "no", RECORDING_MP4: "0", JOB_LOCK_MS: "5000" });
    expect(c).toMatchObject({ recordingsDir: "/srv/rec", redisUrl: "redis://r:6379/2", postprocessWorker: false, clientRecording: false, recordingMp4: false, jobLockMs: 5000 });
    expect(() => loadConfig({ REDIS_URL: "localhost:6379" })).toThrow(/REDIS_URL/);
    expect(() => loadConfig({ POSTPROCESS_WORKER: "maybe" })).toThrow(/on or off/);
    expect(() => loadConfig({ FFMPEG_SPAWN: "fork" })).toThrow(/FFMPEG_SPAWN must be host or direct/);
    expect(() => loadConfig({ OPUS_ENGINE: "wasm" })).toThrow(/OPUS_ENGINE must be inprocess or ffmpeg/);
    expect(() => loadConfig({ VIDEO_ENGINE: "gpu" })).toThrow(/VIDEO_ENGINE must be library or ffmpeg/);
    expect(() => loadConfig({ RTP_SENDER: "fast" })).toThrow(/RTP_SENDER must be lean or werift/);
    expect(() => loadConfig({ MEDIA_WORKERS: "many" })).toThrow(/MEDIA_WORKERS must be auto or a number/);
    expect(() => loadConfig({ MEDIA_WORKERS: "-1" })).toThrow(/MEDIA_WORKERS must be auto or a number/);
    expect(() => loadConfig({ JOB_ATTEMPTS: "0" })).toThrow(/JOB_ATTEMPTS/);
  });

  it("reads the public-server limits and refuses a short AUTH_SECRET", () => {
    const c = loadConfig({ MAX_ROOMS: "3", MAX_JOINS_PER_IP: "2", MAX_ROOMS_PER_IP: "1", AUTH_SECRET: "s".repeat(32), PUBLIC_API: "on", MAX_RECORDINGS: "1" });
    expect(c).toMatchObject({ maxRooms: 3, maxJoinsPerIp: 2, maxRoomsPerIp: 1, authSecret: "s".repeat(32), publicApi: true, maxRecordings: 1 });
    expect(() => loadConfig({ AUTH_SECRET: "short" })).toThrow(/AUTH_SECRET.*32/);
    expect(() => loadConfig({ MAX_CONNECTIONS_PER_IP: "0" })).toThrow(/MAX_CONNECTIONS_PER_IP/);
    expect(() => loadConfig({ LAYOUT: "mosaic" })).toThrow(/LAYOUT/);
    expect(() => loadConfig({ LAYOUT: "pinned" })).toThrow(/LAYOUT/);
    expect(() => loadConfig({ LABELS: "maybe" })).toThrow(/LABELS/);
    expect(loadConfig({ VIDEO_CODECS: "H264, vp8" }).videoCodecs).toEqual(["h264", "vp8"]);
    expect(() => loadConfig({ VIDEO_CODECS: "av1" })).toThrow(/VIDEO_CODECS/);
    expect(loadConfig({ OUTPUT_RUNGS: "1280x720:1500, 640x360:500" }).outputRungs).toEqual([{ width: 1280, height: 720, kbps: 1500 }, { width: 640, height: 360, kbps: 500 }]);
    expect(() => loadConfig({ OUTPUT_RUNGS: "640x360:500,1280x720:1500" })).toThrow(/OUTPUT_RUNGS/);
    expect(() => loadConfig({ OUTPUT_RUNGS: "1280x720:1500,641x360:500" })).toThrow(/OUTPUT_RUNGS/);
    expect(() => loadConfig({ VIDEO_CODECS: "vp8,vp8" })).toThrow(/VIDEO_CODECS/);
  });

  it("reads STUN/TURN settings and refuses TURN without a secret", () => {
    const c = loadConfig({ STUN_URLS: "stun:a:3478", TURN_URLS: "turn:a:3478?transport=udp, turns:a:5349", TURN_SECRET: "s", TURN_TTL_S: "600", ICE_EXTRA_HOSTS: "127.0.0.1" });
    expect(c).toMatchObject({ stunUrls: ["stun:a:3478"], turnUrls: ["turn:a:3478?transport=udp", "turns:a:5349"], turnSecret: "s", turnTtlS: 600, iceExtraHosts: ["127.0.0.1"] });
    expect(() => loadConfig({ TURN_URLS: "turn:a" })).toThrow(/TURN_SECRET/);
    expect(() => loadConfig({ TURN_URLS: "http://a", TURN_SECRET: "s" })).toThrow(/TURN_URLS/);
    expect(() => loadConfig({ STUN_URLS: "turn:a" })).toThrow(/STUN_URLS/);
  });

  it("treats empty integer variables as unset", () => {
    const c = loadConfig({ PORT: "", OUTPUT_FPS: "", VIDEO_KBPS: "", MAX_PARTICIPANTS: "" });
    expect(c).toMatchObject({ port: 8080, fps: 30, videoKbps: 1500, maxParticipants: 16 });
  });

  it("treats empty optional strings as unset", () => {
    const c = loadConfig({ RTC_PORT_RANGE: "", ANNOUNCED_IP: "", ICE_SERVERS: "", FFMPEG_PATH: "" });
    expect(c.rtcPortRange).toBeUndefined();
    expect(c.announcedIp).toBeUndefined();
    expect(c.iceServers).toEqual([]);
    expect(c.ffmpegPath).toBe(ffmpegInstaller.path);
  });

  it("does not read process.env when an env object is given", () => {
    const saved = process.env.PORT;
    process.env.PORT = "1234";
    try {
      expect(loadConfig({}).port).toBe(8080);
    } finally {
      if (saved === undefined) delete process.env.PORT;
      else process.env.PORT = saved;
    }
  });
});

describe("loadConfig parses each variable", () => {
  it.each([
    ["PORT", "9000", "port", 9000],
    ["PORT", "0", "port", 0],
    ["PORT", "65535", "port", 65535],
    ["HOST", "127.0.0.1", "host", "127.0.0.1"],
    ["OUTPUT_FPS", "15", "fps", 15],
    ["OUTPUT_FPS", "60", "fps", 60],
    ["VIDEO_KBPS", "800", "videoKbps", 800],
    ["AUDIO_KBPS", "64", "audioKbps", 64],
    ["KEYFRAME_INTERVAL_S", "2", "keyframeIntervalS", 2],
    ["KEYFRAME_MIN_INTERVAL_MS", "0", "keyframeMinIntervalMs", 0],
    ["KEYFRAME_MIN_INTERVAL_MS", "250", "keyframeMinIntervalMs", 250],
    ["STALL_TIMEOUT_MS", "3000", "stallTimeoutMs", 3000],
    ["LABELS", "off", "labels", false],
    ["LAYOUT", "speaker", "layout", "speaker"],
    ["SPEAKER_HOLD_MS", "2500", "speakerHoldMs", 2500],
    ["SPEAKER_MIN_SWITCH_MS", "5000", "speakerMinSwitchMs", 5000],
    ["ANNOUNCED_IP", "203.0.113.7", "announcedIp", "203.0.113.7"],
    ["FFMPEG_PATH", "/usr/bin/ffmpeg", "ffmpegPath", "/usr/bin/ffmpeg"],
    ["FFMPEG_SPAWN", "direct", "ffmpegSpawn", "direct"],
    ["OPUS_ENGINE", "ffmpeg", "opusEngine", "ffmpeg"],
    ["OPUS_ENGINE", "InProcess", "opusEngine", "inprocess"],
    ["RTP_SENDER", "werift", "rtpSender", "werift"],
    ["RTP_SENDER", "LEAN", "rtpSender", "lean"],
    ["VIDEO_ENGINE", "ffmpeg", "videoEngine", "ffmpeg"],
    ["MEDIA_WORKERS", "auto", "mediaWorkers", "auto"],
    ["MEDIA_WORKERS", "3", "mediaWorkers", 3],
    ["MEDIA_WORKERS", "0", "mediaWorkers", 0],
    ["LOG_LEVEL", "debug", "logLevel", "debug"],
    ["LOG_LEVEL", "warn", "logLevel", "warn"],
    ["LOG_LEVEL", "error", "logLevel", "error"],
    ["MAX_MESSAGE_BYTES", "1024", "maxMessageBytes", 1024],
    ["MAX_PARTICIPANTS", "4", "maxParticipants", 4],
  ] as const)("%s=%s -> %s", (name, value, key, expected) => {
    expect(loadConfig({ [name]: value })[key]).toBe(expected);
  });

  it.each([
    ["640x360", 640, 360],
    ["64x64", 64, 64],
    ["3840x2160", 3840, 2160],
    ["1920x1080", 1920, 1080],
  ])("OUTPUT_SIZE=%s", (value, width, height) => {
    expect(loadConfig({ OUTPUT_SIZE: value })).toMatchObject({ width, height });
  });

  it("RTC_PORT_RANGE", () => {
    expect(loadConfig({ RTC_PORT_RANGE: "40000-40999" }).rtcPortRange).toEqual([40000, 40999]);
    expect(loadConfig({ RTC_PORT_RANGE: "1024-65535" }).rtcPortRange).toEqual([1024, 65535]);
  });

  it("ICE_SERVERS", () => {
    const servers = [
      { urls: "stun:stun.example.org:3478" },
      { urls: ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"], username: "u", credential: "p" },
    ];
    expect(loadConfig({ ICE_SERVERS: JSON.stringify(servers) }).iceServers).toEqual(servers);
    expect(loadConfig({ ICE_SERVERS: "[]" }).iceServers).toEqual([]);
  });
});

describe("loadConfig rejects bad values with the variable's name", () => {
  it.each([
    ["PORT", "abc"],
    ["PORT", "-1"],
    ["PORT", "65536"],
    ["PORT", "80.5"],
    ["OUTPUT_FPS", "0"],
    ["OUTPUT_FPS", "61"],
    ["OUTPUT_FPS", "thirty"],
    ["VIDEO_KBPS", "49"],
    ["VIDEO_KBPS", "20001"],
    ["AUDIO_KBPS", "5"],
    ["AUDIO_KBPS", "257"],
    ["KEYFRAME_INTERVAL_S", "0"],
    ["KEYFRAME_INTERVAL_S", "601"],
    ["KEYFRAME_MIN_INTERVAL_MS", "-1"],
    ["KEYFRAME_MIN_INTERVAL_MS", "60001"],
    ["STALL_TIMEOUT_MS", "99"],
    ["STALL_TIMEOUT_MS", "1.5e3x"],
    ["MAX_MESSAGE_BYTES", "1023"],
    ["MAX_MESSAGE_BYTES", String(16 * 1024 * 1024 + 1)],
    ["MAX_PARTICIPANTS", "0"],
    ["MAX_PARTICIPANTS", "101"],
    ["OUTPUT_SIZE", "1280*720"],
    ["OUTPUT_SIZE", "1280x"],
    ["OUTPUT_SIZE", "-1280x720"],
    ["OUTPUT_SIZE", "62x64"],
    ["OUTPUT_SIZE", "1281x720"],
    ["OUTPUT_SIZE", "1280x721"],
    ["OUTPUT_SIZE", "3842x2160"],
    ["OUTPUT_SIZE", "3840x2162"],
    ["RTC_PORT_RANGE", "40000"],
    ["RTC_PORT_RANGE", "40000:40999"],
    ["RTC_PORT_RANGE", "1000-2000"],
    ["RTC_PORT_RANGE", "40000-70000"],
    ["RTC_PORT_RANGE", "40000-40000"],
    ["RTC_PORT_RANGE", "40999-40000"],
    ["ICE_SERVERS", "stun:stun.example.org"],
    ["ICE_SERVERS", '{"urls":"stun:x"}'],
    ["ICE_SERVERS", "[{}]"],
    ["ICE_SERVERS", "[1]"],
    ["ICE_SERVERS", "[null]"],
    ["ICE_SERVERS", '[{"urls":5}]'],
    ["LOG_LEVEL", "verbose"],
    ["LOG_LEVEL", "INFO"],
  ])("%s=%s", (name, value) => {
    expectConfigError({ [name]: value }, name);
  });

  it("quotes the bad value", () => {
    expect(() => loadConfig({ PORT: "eighty" })).toThrow(/"eighty"/);
  });

  it("ConfigError is an Error", () => {
    expect(new ConfigError("x")).toBeInstanceOf(Error);
  });
});

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
      keyframeIntervalS: 10,
      keyframeMinIntervalMs: 500,
      stallTimeoutMs: 1500,
      rtcPortRange: undefined,
      announcedIp: undefined,
      iceServers: [],
      stunUrls: [],
      turnUrls: [],
      turnSecret: undefined,
      turnTtlS: 86_400,
      iceExtraHosts: [],
      ffmpegPath: ffmpegInstaller.path,
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
    });
  });

  it("reads the recording settings and refuses nonsense", () => {
    const c = loadConfig({ RECORDINGS_DIR: "/srv/rec", REDIS_URL: "redis://r:6379/2", POSTPROCESS_WORKER: "off", CLIENT_RECORDING: "no", RECORDING_MP4: "0", JOB_LOCK_MS: "5000" });
    expect(c).toMatchObject({ recordingsDir: "/srv/rec", redisUrl: "redis://r:6379/2", postprocessWorker: false, clientRecording: false, recordingMp4: false, jobLockMs: 5000 });
    expect(() => loadConfig({ REDIS_URL: "localhost:6379" })).toThrow(/REDIS_URL/);
    expect(() => loadConfig({ POSTPROCESS_WORKER: "maybe" })).toThrow(/on or off/);
    expect(() => loadConfig({ JOB_ATTEMPTS: "0" })).toThrow(/JOB_ATTEMPTS/);
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
    ["ANNOUNCED_IP", "203.0.113.7", "announcedIp", "203.0.113.7"],
    ["FFMPEG_PATH", "/usr/bin/ffmpeg", "ffmpegPath", "/usr/bin/ffmpeg"],
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

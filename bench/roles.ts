// The role of a process in the server's tree, from its argv (see mixer/*.ts for the ffmpeg
// arguments), for the benchmarks' CPU by process.

export function serverRole(root: number) {
  return (pid: number, argv: string[]): string => {
    const a = argv.join(" ");
    if (pid === root) return "node";
    // Rooms in media workers (MEDIA_WORKERS): their Node processes, and each one's spawn host.
    if (a.includes("media/worker.ts") || a.includes("media-worker.js")) return "node (media workers)";
    if (argv[1] === "-e") return "spawn hosts";
    // An encoder reads Matroska (raw canvases with timestamps); the recorder writes it.
    const rung = a.includes("-vf scale=") ? " (lower rung)" : "";
    if (a.includes("libvpx") && a.includes("-enc_time_base")) return `vp8 encoder${rung}`;
    if (a.includes("libx264") && a.includes("-enc_time_base")) return `h264 encoder${rung}`;
    if (a.includes("-f matroska")) return "recorder";
    if (a.includes("-progress pipe:1")) return "post-processing";
    if (a.includes("libopus")) return "opus encoders";
    if (a.includes("-f ivf -i pipe:0") || a.includes("-f h264 -i pipe:0")) return "tile decoders";
    if (a.includes("-f ogg -i pipe:0")) return "opus decoders";
    return argv[0]?.split("/").pop() ?? "?";
  };
}

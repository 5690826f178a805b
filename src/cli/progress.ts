/**
 * Progress on long CLI work (bench iterations, building, loading): a cli-progress bar on an interactive
 * terminal, nothing when the stream is not a TTY (pipes, CI) or the command prints JSON.
 */
import cliProgress from "cli-progress";

export interface Progress {
  tick(n?: number): void;
  stop(): void;
}

const SILENT: Progress = { tick() {}, stop() {} };

export function progressFor(stream: NodeJS.WriteStream | undefined, total: number, label: string): Progress {
  if (!stream?.isTTY || total <= 0) return SILENT;
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: `${label} [{bar}] {value}/{total} {duration_formatted}`,
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  return {
    tick: (n = 1) => bar.increment(n),
    stop: () => bar.stop(),
  };
}

// The benchmark table's rows for whole processes, statements per command and the CPU split of sustained
// Slack load, each beside its baseline and the target of issue 15.
import type { ProcessResults } from './processes.js';
import type { RoundTrips } from './round-trips.js';

const ms = (n: number) => `${n.toFixed(1)} ms`;
const yes = (ok: boolean) => (ok ? 'yes' : 'NO');
const mb = (n: number | undefined) => (n === undefined ? '' : `, ${n} MiB`);

export function processRows(p: ProcessResults): string[][] {
  return [
    [
      'dbops exec /db sizes (whole process), median',
      `${ms(p.exec.wall.medianMs)}${mb(p.exec.peakRssMb)}`,
      `psql ${ms(p.psql.wall.medianMs)}${mb(p.psql.peakRssMb)}`,
      p.execRatio.toFixed(2),
      '<= 5x psql',
      yes(p.execRatio <= 5),
    ],
    [
      'dbops --help (whole process), median',
      `${ms(p.help.wall.medianMs)}${mb(p.help.peakRssMb)}`,
      `node -e 0 ${ms(p.nodeBare.wall.medianMs)}${mb(p.nodeBare.peakRssMb)}`,
      p.helpRatio.toFixed(2),
      '<= 2x node',
      yes(p.helpRatio <= 2),
    ],
  ];
}

export function roundTripRows(t: {
  read: RoundTrips;
  destructiveRequest: RoundTrips;
  destructiveApprove: RoundTrips;
}): string[][] {
  const both = (r: RoundTrips) => `state ${r.state}, target ${r.target}`;
  const trips = (r: RoundTrips) => `state ${r.trips.state}, target ${r.trips.target}`;
  return [
    ['statements per /db sizes', both(t.read), '-', '-', '-', '-'],
    ['statements per destructive request', both(t.destructiveRequest), '-', '-', '-', '-'],
    ['statements per approval that runs it', both(t.destructiveApprove), '-', '-', '-', '-'],
    ['round trips per /db sizes', trips(t.read), '-', '-', '-', '-'],
    ['round trips per destructive request', trips(t.destructiveRequest), '-', '-', '-', '-'],
    ['round trips per approval that runs it', trips(t.destructiveApprove), '-', '-', '-', '-'],
  ];
}

export interface CpuSplit {
  text: string;
  /** shared: every process on every CPU; pinned: PostgreSQL on a CPU of its own, the rest on the others. */
  layout: 'shared' | 'pinned';
  postgresCpus: number;
  commandsPerSecond: number;
  cpuMsPerCommand: {
    bot: number;
    botMainThread: number;
    postgres: number;
    loadGenerator: number;
    fakeSlack: number;
  };
  postgresBoundCeiling?: number;
  ofCeiling?: number;
}

export function cpuRows(splits: readonly CpuSplit[]): string[][] {
  return splits.flatMap((s) => {
    const c = s.cpuMsPerCommand;
    const where = s.layout === 'pinned' ? `, PG pinned to ${s.postgresCpus} CPU` : '';
    const rows = [
      [
        `Slack /db ${s.text}${where}: CPU per command`,
        `bot ${c.bot.toFixed(2)} ms (main thread ${c.botMainThread.toFixed(2)})`,
        `PG ${c.postgres.toFixed(2)}, load ${c.loadGenerator.toFixed(2)}, fake ${c.fakeSlack.toFixed(2)}`,
        '-',
        '<= 1.5 ms bot',
        yes(c.bot <= 1.5),
      ],
    ];
    if (s.text.startsWith('targets')) {
      rows.push([
        `Slack /db ${s.text}: sustained`,
        `${s.commandsPerSecond} commands/s`,
        '-',
        '-',
        '>= 600/s',
        yes(s.commandsPerSecond >= 600),
      ]);
    } else if (s.postgresBoundCeiling !== undefined && s.ofCeiling !== undefined) {
      rows.push([
        `Slack /db ${s.text}${where}: sustained`,
        `${s.commandsPerSecond} commands/s`,
        `PG-bound ceiling ${s.postgresBoundCeiling}/s`,
        s.ofCeiling.toFixed(2),
        '>= 0.75 of ceiling',
        yes(s.ofCeiling >= 0.75),
      ]);
    }
    return rows;
  });
}

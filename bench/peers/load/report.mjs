#!/usr/bin/env node
// Prints the JSON lines written by load.mjs --json (or ladder.sh) as one
// Markdown table per server: load runs first, then idle-memory runs.
//
//   node report.mjs results.jsonl [more.jsonl ...]

import { readFileSync } from 'node:fs';

const files = process.argv.slice(2);
if (files.length === 0 || files.includes('-h') || files.includes('--help')) {
  console.log('usage: node report.mjs FILE.jsonl [FILE.jsonl ...]');
  process.exit(files.length === 0 ? 2 : 0);
}

const rows = [];
for (const f of files) {
  for (const line of readFileSync(f, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      rows.push(JSON.parse(line));
    } catch {
      console.error(`report.mjs: skipping a line of ${f} that is not JSON`);
    }
  }
}

const v = (x) => (x === null || x === undefined ? '-' : String(x));
const errs = (e) => (e ? `${e.connect_failed}/${e.conn_errors}/${e.closes}` : '-');
const table = (head, body) => {
  const out = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const r of body) out.push(`| ${r.join(' | ')} |`);
  return out.join('\n');
};

// One table per (server, client implementation).
const groups = [...new Set(rows.map((r) => `${r.server}\t${r.client ?? 'lite'}`))];
for (const g of groups) {
  const [s, client] = g.split('\t');
  const mine = rows.filter((r) => r.server === s && (r.client ?? 'lite') === client);
  const ver = mine.find((r) => r.versions)?.versions;
  console.log(`\n### ${s}, ${client} clients${ver ? ` (${Object.entries(ver).map(([k, x]) => `${k} ${x}`).join(', ')})` : ''}\n`);
  const load = mine.filter((r) => r.mode === 'load');
  if (load.length) {
    console.log(
      table(
        ['clients', 'docs', 'rate/s', 'edits/s (target)', 'deliveries/s (target)', 'p50 ms', 'p99 ms', 'max ms', 'undelivered', 'errors fail/err/close', 'server CPU s (core)', 'server us/edit', 'server peak RSS MiB', 'generator CPU (core)', 'gen loop p99 ms', 'saturated'],
        load.map((r) =>
          r.error
            ? [v(r.clients), v(r.docs), v(r.rate), `failed: ${r.error}`, '', '', '', '', '', '', '', '', '', '', '', '']
            : [
                r.clients,
                r.docs,
                r.rate,
                `${v(r.edits_per_s)} (${v(r.edits_target_per_s)})`,
                `${v(r.deliveries_per_s)} (${v(r.deliveries_target_per_s)})`,
                v(r.latency_ms?.p50),
                v(r.latency_ms?.p99),
                v(r.latency_ms?.max),
                `${v(r.undelivered)} of ${v(r.deliveries_expected)}`,
                errs(r.errors),
                `${v(r.server_cpu_s)} (${v(r.server_cpu_util)})`,
                v(r.server_us_per_edit),
                v(r.server_peak_rss_mb),
                v(r.gen_cpu_util),
                v(r.gen_loop_delay_p99_ms),
                [r.server_saturated ? 'server' : '', r.generator_saturated ? 'GENERATOR' : ''].filter(Boolean).join(', ') || 'no',
              ],
        ),
      ),
    );
  }
  const idle = mine.filter((r) => r.mode === 'idle');
  if (idle.length) {
    console.log('');
    console.log(
      table(
        ['idle clients', 'docs', 'server RSS before MiB', 'after MiB', 'RSS per connection KiB', 'errors fail/err/close'],
        idle.map((r) =>
          r.error
            ? [v(r.clients), v(r.docs), `failed: ${r.error}`, '', '', '']
            : [r.clients, r.docs, v(r.server_rss_before_mb), v(r.server_rss_after_mb), v(r.server_rss_per_conn_kb), errs(r.errors)],
        ),
      ),
    );
  }
}

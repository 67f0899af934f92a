/**
 * The deploy/ artefacts against the metrics a relay really exports, checked with promtool
 * (Debian package `prometheus`; CI installs it): the alert rules load and behave as their
 * runbooks say, the exposition lints clean, and the dashboard and rules name only metrics
 * that exist.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { EventLabels } from '@sluice/core';
import { createMetrics, metricNamesInPromQL, type SluiceMetrics } from '@sluice/metrics';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const alertsPath = join(root, 'deploy/prometheus/alerts.yml');
const prometheusPath = join(root, 'deploy/prometheus/prometheus.yml');
const dashboardPath = join(root, 'deploy/grafana/sluice.json');

let scratch: string;

beforeAll(async () => {
  try {
    await run('promtool', ['--version']);
  } catch (cause) {
    throw new Error('promtool is not on PATH: install it with `apt-get install -y prometheus`', { cause });
  }
  scratch = await mkdtemp(join(tmpdir(), 'sluice-metrics-rules-'));
});

afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** Runs promtool; resolves with its output, rejects with the output in the message. */
async function promtool(args: string[], stdin?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('promtool', args, (err, stdout, stderr) => {
      const output = `${stdout}${stderr}`;
      if (err) reject(new Error(`promtool ${args.join(' ')} failed:\n${output}`, { cause: err }));
      else resolve(output);
    });
    if (stdin !== undefined) child.stdin?.end(stdin);
  });
}

/** A relay's Metrics after it has seen every kind of event and every kind of report. */
function busyMetrics(collectDefault: boolean): SluiceMetrics {
  const m = createMetrics({ buildInfo: { version: '0.1.0', commit: 'abc1234' }, collectDefault });
  const change: EventLabels = { kind: 'change', schema: 'public', table: 'orders', op: 'insert' };
  const outbox: EventLabels = { kind: 'outbox', schema: '', table: 'Order', op: 'outbox' };
  for (const op of ['insert', 'update', 'delete', 'truncate', 'read']) {
    const labels = { ...change, op };
    m.eventReceived(labels);
    m.eventPublished(labels, 0.002);
    m.endToEndLag(labels, 0.05);
  }
  m.eventReceived(outbox);
  m.eventPublished(outbox, 0.003);
  m.endToEndLag(outbox, 0.2);
  m.inFlight(10, 2048);
  m.confirmedLsn(0x16b3748n);
  m.receivedLsn(0x16b3800n);
  m.slotStats({
    slot: 'sluice',
    retainedWalBytes: 1 << 20,
    walStatus: 'reserved',
    active: true,
    spillBytes: 0,
    spillCount: 0,
  });
  m.publishRetry('RetriableError');
  m.publishError('PermanentError');
  m.reconnect('postgres');
  m.reconnect('nats');
  m.snapshotRows('public', 'orders', 500);
  m.snapshotProgress('public', 'orders', 0.5);
  m.snapshotEstimate('public', 'orders', 1000);
  m.backfillRequests(1, 1);
  m.outboxBacklog(3);
  m.deadLettered('too_large');
  m.deadLetterStats({
    open: new Map([['too_large', 1]]),
    parkedKeys: 1,
    parkedEvents: 2,
    oldestAgeSeconds: 30,
  });
  m.setReady(true);
  return m;
}

/** Family names from the `# TYPE` lines of an exposition. */
function familyNames(text: string): Set<string> {
  return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] as string));
}

describe('metrics exposition', () => {
  it('passes promtool check metrics for a relay that has seen every kind of event', async () => {
    const text = await busyMetrics(false).text();
    await expect(promtool(['check', 'metrics'], text)).resolves.toBe('');
  });

  it("passes promtool check metrics with Node's default metrics too, overflow series included", async () => {
    const m = busyMetrics(true);
    // Past the caps: `_other` series are ordinary label values to the linter.
    for (let i = 0; i < 120; i++)
      m.eventReceived({ kind: 'outbox', schema: '', table: `T${i}`, op: 'outbox' });
    await expect(promtool(['check', 'metrics'], await m.text())).resolves.toBe('');
  });
});

// ---------------------------------------------------------------------------------------------
// A reader for the YAML subset deploy/ uses: block mappings and sequences, plain and quoted
// scalars, `|`/`>` block scalars, full-line comments. No YAML library is installed, and this is
// enough to turn the rule file into data (and back into JSON, which is YAML, for promtool).

type Yaml = string | null | Yaml[] | { [key: string]: Yaml };

function parseYaml(source: string): Yaml {
  const lines = source.split('\n').map((text, i) => ({ no: i + 1, text: text.replace(/\s+$/, '') }));
  let pos = 0;
  const indentOf = (text: string) => text.length - text.trimStart().length;
  const significant = (text: string) => text.trim() !== '' && !text.trimStart().startsWith('#');
  const skip = () => {
    while (pos < lines.length && !significant(lines[pos]!.text)) pos++;
  };
  const fail = (message: string): never => {
    throw new SyntaxError(`line ${lines[Math.min(pos, lines.length - 1)]!.no}: ${message}`);
  };

  function scalar(raw: string): string {
    const text = raw.trim();
    if (text.startsWith('"')) return JSON.parse(text) as string;
    if (text.startsWith("'")) return text.slice(1, -1).replaceAll("''", "'");
    if (text.startsWith('[') || text.startsWith('{')) fail(`flow collections are not supported: ${text}`);
    return text.replace(/\s+#.*$/, '');
  }

  function blockScalar(header: string, parentIndent: number): string {
    const body: string[] = [];
    while (pos < lines.length) {
      const { text } = lines[pos]!;
      if (text.trim() !== '' && indentOf(text) <= parentIndent) break;
      body.push(text);
      pos++;
    }
    while (body.length > 0 && body[body.length - 1]!.trim() === '') body.pop();
    const indent = Math.min(...body.filter((l) => l.trim() !== '').map(indentOf));
    const content = body.map((l) => l.slice(indent));
    const text = header.startsWith('|')
      ? content.join('\n')
      : content.reduce(
          (acc, l) => (l === '' ? `${acc}\n` : acc === '' || acc.endsWith('\n') ? acc + l : `${acc} ${l}`),
          '',
        );
    return header.endsWith('-') ? text : `${text}\n`;
  }

  function value(rest: string, indent: number): Yaml {
    if (rest === '') {
      skip();
      if (pos >= lines.length || indentOf(lines[pos]!.text) <= indent) {
        // `key:` followed by a sequence at the same indent is still its value.
        if (
          pos < lines.length &&
          lines[pos]!.text.trimStart().startsWith('- ') &&
          indentOf(lines[pos]!.text) === indent
        ) {
          return block(indent);
        }
        return null;
      }
      return block(indentOf(lines[pos]!.text));
    }
    if (/^[|>][-+]?$/.test(rest)) return blockScalar(rest, indent);
    return scalar(rest);
  }

  function block(indent: number): Yaml {
    skip();
    const first = lines[pos]!.text.trimStart();
    if (first === '-' || first.startsWith('- ')) {
      const items: Yaml[] = [];
      while (pos < lines.length && indentOf(lines[pos]!.text) === indent) {
        const line = lines[pos]!;
        const item = line.text.trimStart();
        if (!(item === '-' || item.startsWith('- '))) break;
        // Re-read the item's first line as if it started at the item's content column.
        line.text = `${' '.repeat(indent + 2)}${item.slice(2)}`;
        items.push(/^[A-Za-z_][\w.-]*:(\s|$)/.test(item.slice(2)) ? block(indent + 2) : scalarItem(line));
        skip();
      }
      return items;
    }
    const map: { [key: string]: Yaml } = {};
    while (pos < lines.length && indentOf(lines[pos]!.text) === indent) {
      const match = /^([A-Za-z_][\w.-]*):(?:\s+(.*))?$/.exec(lines[pos]!.text.trimStart());
      if (match === null) fail(`expected "key: value", got ${JSON.stringify(lines[pos]!.text)}`);
      pos++;
      map[match![1] as string] = value(match![2] ?? '', indent);
      skip();
    }
    if (pos < lines.length && indentOf(lines[pos]!.text) > indent) fail('unexpected indentation');
    return map;
  }

  function scalarItem(line: { text: string }): string {
    pos++;
    return scalar(line.text);
  }

  skip();
  return pos < lines.length ? block(indentOf(lines[pos]!.text)) : null;
}

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

async function readRules(): Promise<Rule[]> {
  const doc = parseYaml(await readFile(alertsPath, 'utf8')) as unknown as { groups: { rules: Rule[] }[] };
  return doc.groups.flatMap((g) => g.rules);
}

/** The metric families a relay exports, default Node metrics included. */
async function exportedFamilies(): Promise<Set<string>> {
  return familyNames(await busyMetrics(true).text());
}

describe('deploy/prometheus/alerts.yml', () => {
  it('passes promtool check rules', async () => {
    await expect(promtool(['check', 'rules', alertsPath])).resolves.toMatch(/SUCCESS: 8 rules found/);
  });

  it('is loaded by the example prometheus.yml, which passes promtool check config', async () => {
    await expect(promtool(['check', 'config', prometheusPath])).resolves.toMatch(
      /SUCCESS: 1 rule files found/,
    );
  });

  it('gives every alert a severity and summary, description and runbook annotations', async () => {
    const rules = await readRules();
    expect(rules.map((r) => r.alert)).toEqual([
      'SluiceSlotRetainedWalHigh',
      'SluiceSlotLost',
      'SluiceLagHigh',
      'SluiceNotReady',
      'SluiceNoEventsWhileWritesHappen',
      'SluicePublishStalled',
      'SluicePublishErrors',
      'SluiceDeadLetters',
    ]);
    for (const rule of rules) {
      expect(['warning', 'critical'], rule.alert).toContain(rule.labels?.['severity']);
      for (const key of ['summary', 'description', 'runbook']) {
        expect(rule.annotations?.[key]?.length ?? 0, `${rule.alert} ${key}`).toBeGreaterThan(40);
      }
    }
  });

  it('references only metrics a relay exports', async () => {
    const exported = await exportedFamilies();
    const rules = await readRules();
    // Annotations are prose (apostrophes are not PromQL quotes): take every name-shaped word.
    const prose = rules.flatMap((r) => Object.values(r.annotations ?? {})).join('\n');
    const referenced = [
      ...new Set([
        ...rules.flatMap((r) => metricNamesInPromQL(r.expr)),
        ...(prose.match(/\bsluice_[a-z0-9_]*[a-z0-9]/g) ?? []),
      ]),
    ];
    expect(referenced.length).toBeGreaterThan(5);
    expect(referenced.filter((name) => !exported.has(name))).toEqual([]);
  });

  // promtool test rules compares annotations verbatim, so the scenarios run against a copy of
  // the rules without them: what is tested is when each alert fires and with which labels.
  let rulesWithoutAnnotations: string;
  beforeAll(async () => {
    const rules = (await readRules()).map(({ annotations: _, ...rule }) => rule);
    rulesWithoutAnnotations = join(scratch, 'rules.json');
    await writeFile(rulesWithoutAnnotations, JSON.stringify({ groups: [{ name: 'sluice', rules }] }));
  });

  interface Series {
    series: string;
    values: string;
  }
  interface Expect {
    at: string;
    alert: string;
    firing: Record<string, string>[];
  }
  let scenarioCount = 0;
  async function scenario(input: Series[], expectations: Expect[]): Promise<void> {
    const file = join(scratch, `scenario-${scenarioCount++}.json`);
    const test = {
      rule_files: [rulesWithoutAnnotations],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: input,
          alert_rule_test: expectations.map((e) => ({
            eval_time: e.at,
            alertname: e.alert,
            exp_alerts: e.firing.map((labels) => ({ exp_labels: labels })),
          })),
        },
      ],
    };
    await writeFile(file, JSON.stringify(test, null, 2));
    await promtool(['test', 'rules', file]);
  }

  const relay = { job: 'sluice', instance: 'relay:9464' };
  const sel = `job="sluice",instance="relay:9464"`;
  const MiB = 1024 * 1024;

  describe('SluiceNoEventsWhileWritesHappen', () => {
    const alert = 'SluiceNoEventsWhileWritesHappen';
    const firing = [{ ...relay, severity: 'warning' }];

    it('fires when the relay reads 10 MiB of WAL a minute and publishes nothing for 20 minutes', async () => {
      await scenario(
        [
          { series: `sluice_received_lsn_bytes{${sel}}`, values: `${1000 * MiB}+${10 * MiB}x40` },
          {
            series: `sluice_events_published_total{${sel},kind="change",schema="public",table="t",op="insert"}`,
            values: '500x40',
          },
        ],
        [
          { at: '10m', alert, firing: [] },
          { at: '25m', alert, firing },
        ],
      );
    });

    it('fires when no event was ever published, so there is no published series at all', async () => {
      await scenario(
        [{ series: `sluice_received_lsn_bytes{${sel}}`, values: `${1000 * MiB}+${10 * MiB}x40` }],
        [{ at: '25m', alert, firing }],
      );
    });

    it('stays silent while events are published', async () => {
      await scenario(
        [
          { series: `sluice_received_lsn_bytes{${sel}}`, values: `${1000 * MiB}+${10 * MiB}x40` },
          {
            series: `sluice_events_published_total{${sel},kind="change",schema="public",table="t",op="insert"}`,
            values: '0+600x40',
          },
        ],
        [{ at: '30m', alert, firing: [] }],
      );
    });

    it('stays silent on a database writing a little WAL outside the publication (under 64 MiB in 15m)', async () => {
      await scenario(
        [{ series: `sluice_received_lsn_bytes{${sel}}`, values: `${1000 * MiB}+${3 * MiB}x40` }],
        [{ at: '30m', alert, firing: [] }],
      );
    });

    it('stays silent after a restart: the position appears at a high LSN, it does not jump from 0', async () => {
      await scenario(
        [{ series: `sluice_received_lsn_bytes{${sel}}`, values: `_x10 ${5000 * MiB}x30` }],
        [{ at: '30m', alert, firing: [] }],
      );
    });

    it('still fires after a restart when the relay then reads WAL and publishes nothing', async () => {
      await scenario(
        [{ series: `sluice_received_lsn_bytes{${sel}}`, values: `_x10 ${5000 * MiB}+${10 * MiB}x30` }],
        [{ at: '35m', alert, firing }],
      );
    });
  });

  describe('SluiceSlotRetainedWalHigh', () => {
    it('fires after 10 minutes above 5 GiB, not before', async () => {
      const alert = 'SluiceSlotRetainedWalHigh';
      await scenario(
        [
          {
            series: `sluice_replication_slot_retained_wal_bytes{${sel},slot="sluice"}`,
            values: `${6 * 1024 * MiB}x20`,
          },
        ],
        [
          { at: '5m', alert, firing: [] },
          { at: '11m', alert, firing: [{ ...relay, slot: 'sluice', severity: 'warning' }] },
        ],
      );
    });

    it('stays silent at 4 GiB', async () => {
      await scenario(
        [
          {
            series: `sluice_replication_slot_retained_wal_bytes{${sel},slot="sluice"}`,
            values: `${4 * 1024 * MiB}x20`,
          },
        ],
        [{ at: '15m', alert: 'SluiceSlotRetainedWalHigh', firing: [] }],
      );
    });
  });

  describe('SluiceSlotLost', () => {
    const statuses = (current: string): Series[] =>
      ['reserved', 'extended', 'unreserved', 'lost'].map((status) => ({
        series: `sluice_replication_slot_wal_status{${sel},slot="sluice",status="${status}"}`,
        values: status === current ? '1x5' : '0x5',
      }));

    it('fires at once for a lost slot and for an unreserved one', async () => {
      for (const status of ['lost', 'unreserved']) {
        await scenario(statuses(status), [
          {
            at: '1m',
            alert: 'SluiceSlotLost',
            firing: [{ ...relay, slot: 'sluice', status, severity: 'critical' }],
          },
        ]);
      }
    });

    it('stays silent for reserved and extended', async () => {
      for (const status of ['reserved', 'extended']) {
        await scenario(statuses(status), [{ at: '3m', alert: 'SluiceSlotLost', firing: [] }]);
      }
    });
  });

  describe('SluiceLagHigh', () => {
    const lag = (perMinute: Record<string, number>): Series[] =>
      Object.entries(perMinute).map(([le, n]) => ({
        series: `sluice_end_to_end_lag_seconds_bucket{${sel},kind="change",le="${le}"}`,
        values: `0+${n}x30`,
      }));

    it('fires when p99 stays above 60 s for 10 minutes', async () => {
      await scenario(lag({ '30': 900, '60': 980, '120': 1000, '+Inf': 1000 }), [
        { at: '8m', alert: 'SluiceLagHigh', firing: [] },
        { at: '15m', alert: 'SluiceLagHigh', firing: [{ ...relay, kind: 'change', severity: 'warning' }] },
      ]);
    });

    it('stays silent when p99 is under 60 s', async () => {
      await scenario(lag({ '30': 995, '60': 1000, '120': 1000, '+Inf': 1000 }), [
        { at: '20m', alert: 'SluiceLagHigh', firing: [] },
      ]);
    });
  });

  describe('SluiceNotReady', () => {
    const alert = 'SluiceNotReady';
    it('fires when the relay reports not ready for 5 minutes', async () => {
      await scenario(
        [
          { series: `sluice_ready{${sel}}`, values: '0x10' },
          { series: `up{${sel}}`, values: '1x10' },
        ],
        [
          { at: '3m', alert, firing: [] },
          { at: '6m', alert, firing: [{ ...relay, severity: 'critical' }] },
        ],
      );
    });

    it('fires when the relay cannot be scraped', async () => {
      await scenario(
        [{ series: `up{${sel}}`, values: '0x10' }],
        [{ at: '6m', alert, firing: [{ ...relay, severity: 'critical' }] }],
      );
    });

    it('fires when no relay is scraped at all', async () => {
      await scenario(
        [{ series: 'up{job="prometheus",instance="localhost:9090"}', values: '1x10' }],
        [{ at: '6m', alert, firing: [{ job: 'sluice', severity: 'critical' }] }],
      );
    });

    describe('for relays sharing a slot (target label relay_pair)', () => {
      const a = { job: 'sluice', instance: 'relay-a:9464', relay_pair: 'orders' };
      const b = { job: 'sluice', instance: 'relay-b:9464', relay_pair: 'orders' };
      const labels = (l: Record<string, string>) =>
        Object.entries(l)
          .map(([k, v]) => `${k}="${v}"`)
          .join(',');

      it('stays silent while one relay streams and the other stands by', async () => {
        await scenario(
          [
            { series: `sluice_ready{${labels(a)}}`, values: '1x10' },
            { series: `sluice_ready{${labels(b)}}`, values: '0x10' },
            { series: `up{${labels(a)}}`, values: '1x10' },
            { series: `up{${labels(b)}}`, values: '1x10' },
          ],
          [{ at: '9m', alert, firing: [] }],
        );
      });

      it('fires once for the pair when neither relay is ready', async () => {
        await scenario(
          [
            { series: `sluice_ready{${labels(a)}}`, values: '0x10' },
            { series: `sluice_ready{${labels(b)}}`, values: '0x10' },
            { series: `up{${labels(a)}}`, values: '1x10' },
            { series: `up{${labels(b)}}`, values: '1x10' },
          ],
          [{ at: '6m', alert, firing: [{ job: 'sluice', relay_pair: 'orders', severity: 'critical' }] }],
        );
      });

      it('fires for a standby that cannot be scraped, while the active streams', async () => {
        await scenario(
          [
            { series: `sluice_ready{${labels(a)}}`, values: '1x10' },
            { series: `up{${labels(a)}}`, values: '1x10' },
            { series: `up{${labels(b)}}`, values: '0x10' },
          ],
          [{ at: '6m', alert, firing: [{ ...b, severity: 'critical' }] }],
        );
      });
    });

    it('stays silent for a ready, scraped relay', async () => {
      await scenario(
        [
          { series: `sluice_ready{${sel}}`, values: '1x10' },
          { series: `up{${sel}}`, values: '1x10' },
        ],
        [{ at: '9m', alert, firing: [] }],
      );
    });
  });

  describe('SluicePublishStalled', () => {
    const alert = 'SluicePublishStalled';
    const published = `sluice_events_published_total{${sel},kind="change",schema="public",table="t",op="insert"}`;

    it('fires when events stay in flight and nothing is acknowledged', async () => {
      await scenario(
        [
          { series: `sluice_events_in_flight{${sel}}`, values: '0x5 1000x20' },
          { series: published, values: '0+100x5 500x20' },
        ],
        [
          { at: '9m', alert, firing: [] },
          { at: '16m', alert, firing: [{ ...relay, severity: 'critical' }] },
        ],
      );
    });

    it('stays silent while acknowledgements keep coming, however many are in flight', async () => {
      await scenario(
        [
          { series: `sluice_events_in_flight{${sel}}`, values: '1000x20' },
          { series: published, values: '0+100x20' },
        ],
        [{ at: '18m', alert, firing: [] }],
      );
    });
  });

  describe('SluicePublishErrors', () => {
    const alert = 'SluicePublishErrors';
    const retries = `sluice_publish_retries_total{${sel},reason="RetriableError"}`;
    const errors = `sluice_publish_errors_total{${sel},reason="PermanentError"}`;

    it('fires when retriable failures persist for 10 minutes', async () => {
      await scenario(
        [{ series: retries, values: '0+2x20' }],
        [
          { at: '8m', alert, firing: [] },
          { at: '12m', alert, firing: [{ ...relay, reason: 'RetriableError', severity: 'warning' }] },
        ],
      );
    });

    it('fires when events keep failing for good (a relay restarted by its orchestrator)', async () => {
      await scenario(
        [{ series: errors, values: '0+1x20' }],
        [{ at: '12m', alert, firing: [{ ...relay, reason: 'PermanentError', severity: 'warning' }] }],
      );
    });

    it('stays silent after a short burst of retries (a NATS restart)', async () => {
      await scenario(
        [{ series: retries, values: '0 0 0 5 9 9x15' }],
        ['4m', '6m', '8m', '10m', '12m', '16m'].map((at) => ({ at, alert, firing: [] })),
      );
    });
  });

  describe('SluiceDeadLetters', () => {
    const alert = 'SluiceDeadLetters';
    const open = `sluice_dead_letters_open{${sel},reason="too_large"}`;

    it('fires a minute after a dead letter is open, and stops once it is replayed (the series goes)', async () => {
      await scenario(
        [{ series: open, values: '_ _ 1x5 _x10' }],
        [
          { at: '2m', alert, firing: [] },
          { at: '4m', alert, firing: [{ ...relay, reason: 'too_large', severity: 'warning' }] },
          { at: '14m', alert, firing: [] },
        ],
      );
    });

    it('stays silent without dead letters', async () => {
      await scenario(
        [{ series: `sluice_parked_keys{${sel}}`, values: '0x10' }],
        [{ at: '8m', alert, firing: [] }],
      );
    });
  });
});

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos?: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: { expr?: string; refId?: string; datasource?: { uid: string } }[];
}

/** Grafana's reference to the dashboard's `datasource` variable (a Grafana, not a JS, template). */
const DATASOURCE_VARIABLE = ['$', '{datasource}'].join('');

describe('deploy/grafana/sluice.json', () => {
  async function dashboard() {
    return JSON.parse(await readFile(dashboardPath, 'utf8')) as {
      schemaVersion: number;
      uid: string;
      panels: Panel[];
      templating: { list: { name: string; type: string; query: unknown; definition?: string }[] };
    };
  }

  it('is a schemaVersion 39 dashboard with datasource, job and instance variables', async () => {
    const d = await dashboard();
    expect(d.schemaVersion).toBe(39);
    expect(d.uid).toBe('sluice-relay');
    expect(d.templating.list.map((v) => [v.name, v.type])).toEqual([
      ['datasource', 'datasource'],
      ['job', 'query'],
      ['instance', 'query'],
    ]);
  });

  it('gives every panel the templated data source and at least one query filtered by job and instance', async () => {
    const panels = (await dashboard()).panels.filter((p) => p.type !== 'row');
    expect(panels.length).toBeGreaterThan(20);
    for (const panel of panels) {
      expect(panel.datasource, panel.title).toEqual({ type: 'prometheus', uid: DATASOURCE_VARIABLE });
      expect(panel.targets?.length ?? 0, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) {
        expect(target.expr, panel.title).toMatch(/job=~"\$job", instance=~"\$instance"/);
        expect(target.datasource?.uid, panel.title).toBe(DATASOURCE_VARIABLE);
      }
    }
  });

  it('has the rows the runbook refers to, unique panel ids, and panels inside the 24-column grid', async () => {
    const panels = (await dashboard()).panels;
    expect(panels.filter((p) => p.type === 'row').map((p) => p.title)).toEqual([
      'Status',
      'Throughput',
      'End-to-end lag',
      'Replication slot',
      'In flight',
      'Publish latency',
      'Errors, retries, reconnects',
      'Dead letters',
      'Snapshot',
      'Process',
    ]);
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    for (const p of panels) {
      expect(p.gridPos, p.title).toBeDefined();
      expect(p.gridPos!.x + p.gridPos!.w, p.title).toBeLessThanOrEqual(24);
    }
  });

  it('has only queries that parse as PromQL (checked by promtool as recording rules)', async () => {
    const rules = (await dashboard()).panels.flatMap((p) =>
      (p.targets ?? []).map((t) => ({
        record: `dashboard:panel_${p.id}_${t.refId}`,
        expr: (t.expr ?? '')
          .replaceAll('$__rate_interval', '1m')
          .replaceAll('$job', '.+')
          .replaceAll('$instance', '.+'),
      })),
    );
    const file = join(scratch, 'dashboard-queries.json');
    await writeFile(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
    await expect(promtool(['check', 'rules', file])).resolves.toMatch(`SUCCESS: ${rules.length} rules found`);
  });

  it('references only metrics a relay exports, in panels and in variables', async () => {
    const d = await dashboard();
    const exprs = [
      ...d.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? '')),
      ...d.templating.list.map((v) => v.definition ?? ''),
    ];
    const referenced = metricNamesInPromQL(exprs.join('\n'));
    expect(referenced).toEqual(
      expect.arrayContaining([
        'sluice_events_published_total',
        'sluice_end_to_end_lag_seconds',
        'sluice_replication_slot_retained_wal_bytes',
        'process_resident_memory_bytes',
        'nodejs_eventloop_lag_p99_seconds',
      ]),
    );
    const exported = await exportedFamilies();
    expect(referenced.filter((name) => !exported.has(name))).toEqual([]);
  });
});

describe('deploy/grafana/provisioning', () => {
  it('provisions the dashboard folder from files and a default Prometheus data source', async () => {
    const dashboards = parseYaml(
      await readFile(join(root, 'deploy/grafana/provisioning/dashboards/sluice.yml'), 'utf8'),
    ) as { apiVersion: string; providers: { type: string; options: { path: string } }[] };
    expect(dashboards.apiVersion).toBe('1');
    expect(dashboards.providers[0]).toMatchObject({ type: 'file', options: { path: expect.any(String) } });

    const sources = parseYaml(
      await readFile(join(root, 'deploy/grafana/provisioning/datasources/prometheus.yml'), 'utf8'),
    ) as { datasources: { type: string; isDefault: string }[] };
    expect(sources.datasources[0]).toMatchObject({ type: 'prometheus', isDefault: 'true' });
  });
});

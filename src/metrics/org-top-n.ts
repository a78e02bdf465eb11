// Opt-in per-org series (metrics.orgTopN > 0), the only metrics labelled by org id: requests and
// credits charged per org since start, exported at scrape time for the N orgs with the most requests
// only, so the label stays bounded. At most MAX_TRACKED_ORGS orgs are tracked; later ones are not
// counted (and say so once).
import { Counter } from 'prom-client';
import { registry } from './core.js';

const MAX_TRACKED_ORGS = 50_000;
const orgTraffic = new Map<string, { requests: number; chargedMicros: number }>();
let orgTopN = 0;
let orgOverflowLogged = false;

export function enableOrgTopN(n: number): void {
  orgTopN = n;
}

function orgEntry(orgId: string): { requests: number; chargedMicros: number } | undefined {
  let entry = orgTraffic.get(orgId);
  if (entry === undefined) {
    if (orgTraffic.size >= MAX_TRACKED_ORGS) {
      if (!orgOverflowLogged) process.emitWarning(`metrics: more than ${MAX_TRACKED_ORGS} orgs; later ones are not in the org top-N`);
      orgOverflowLogged = true;
      return undefined;
    }
    entry = { requests: 0, chargedMicros: 0 };
    orgTraffic.set(orgId, entry);
  }
  return entry;
}

/** A chat request of the org answered (any status). */
export function countOrgRequest(orgId: string): void {
  if (orgTopN === 0) return;
  const entry = orgEntry(orgId);
  if (entry !== undefined) entry.requests++;
}

/** Credits the ledger confirmed it charged the org (a committed settle). */
export function countOrgCharge(orgId: string, micros: number): void {
  if (orgTopN === 0) return;
  const entry = orgEntry(orgId);
  if (entry !== undefined) entry.chargedMicros += micros;
}

/** The top N by requests, computed once per scrape (both series' collect() read it). */
let topOrgsCache: Array<[string, { requests: number; chargedMicros: number }]> | undefined;

/** GET /metrics calls this before each scrape: what is computed once per scrape is computed anew. */
export function beginScrape(): void {
  topOrgsCache = undefined;
}

function topOrgs(): Array<[string, { requests: number; chargedMicros: number }]> {
  if (orgTopN === 0) return [];
  topOrgsCache ??= [...orgTraffic].sort((a, b) => b[1].requests - a[1].requests).slice(0, orgTopN);
  return topOrgsCache;
}

new Counter({
  name: 'nemo_org_requests_total',
  help: 'Opt-in (metrics.orgTopN): chat requests since start of the N orgs with the most, by org id.',
  labelNames: ['org'] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const [org, traffic] of topOrgs()) this.inc({ org }, traffic.requests);
  },
});

new Counter({
  name: 'nemo_org_charged_micros_total',
  help: 'Opt-in (metrics.orgTopN): credits charged since start to the N orgs with the most requests, by org id.',
  labelNames: ['org'] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const [org, traffic] of topOrgs()) this.inc({ org }, traffic.chargedMicros);
  },
});

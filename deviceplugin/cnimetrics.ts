/**
 * The CNI's SLIs, exported by the device plugin (the CNI lives for one call): each scrape reads
 * the outcomes the CNI appended since the last one (host/outcomes.ts) into these metrics.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import { OutcomeReader } from '../host/outcomes.js';

const PREFIX = 'vdpa_cni_';

export function registerCniMetrics(registry: Registry, cniStateDir: string): void {
  const reader = new OutcomeReader(cniStateDir);
  const duration = new Histogram({
    name: `${PREFIX}operation_duration_seconds`,
    help: 'Duration of vdpa-cni calls, by verb (ADD, DEL, CHECK, GC, STATUS) and network.',
    labelNames: ['verb', 'network'] as const,
    buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [],
  });
  const rollbacks = new Counter({ name: `${PREFIX}rollbacks_total`, help: 'ADD calls that failed and undid their own steps.', labelNames: ['network'] as const, registers: [] });
  const reclaims = new Counter({ name: `${PREFIX}reclaims_total`, help: 'Attachments of gone pods that ADD undid before it could use their VF.', labelNames: ['network'] as const, registers: [] });
  // Registered first: collecting it drains the file, so the others are current when they are read.
  const operations = new Counter({
    name: `${PREFIX}operations_total`,
    help: 'vdpa-cni calls, by verb, network and CNI error code ("0" for success).',
    labelNames: ['verb', 'network', 'code'] as const,
    registers: [registry],
    collect() {
      for (const o of reader.read()) {
        operations.inc({ verb: o.verb, network: o.network, code: String(o.code) });
        duration.observe({ verb: o.verb, network: o.network }, o.ms / 1000);
        if (o.rollback) rollbacks.inc({ network: o.network });
        if (o.reclaims) reclaims.inc({ network: o.network }, o.reclaims);
      }
    },
  });
  for (const m of [duration, rollbacks, reclaims]) registry.registerMetric(m);
}

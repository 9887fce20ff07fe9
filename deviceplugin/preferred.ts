/**
 * GetPreferredAllocation: which of the available devices a container should get.
 * Order of concerns: every must-include device; then one NUMA node; then the fewest PFs.
 */

export interface Placement {
  readonly numaNode: number | null;
  /** The PF's address (the function's own for a non-VF). */
  readonly pf: string;
}

export interface PreferenceRequest {
  readonly available: readonly string[];
  readonly mustInclude: readonly string[];
  readonly size: number;
}

function groupBy<K>(ids: readonly string[], key: (id: string) => K): Map<K, string[]> {
  const groups = new Map<K, string[]>();
  for (const id of ids) {
    const k = key(id);
    const g = groups.get(k);
    if (g) g.push(id);
    else groups.set(k, [id]);
  }
  return groups;
}

/**
 * Takes `need` devices spread over as few PFs as possible: first from PFs already in use, then the
 * smallest PF that fits the rest whole (keeping big PFs free for big requests), else the biggest PF
 * and repeat. With disjoint groups this reaches the minimum number of PFs.
 */
function fewestPfs(candidates: readonly string[], need: number, usedPfs: ReadonlySet<string>, pfOf: (id: string) => string): string[] {
  const groups = [...groupBy(candidates, pfOf).entries()];
  const picked: string[] = [];
  const take = (ids: readonly string[]): void => {
    picked.push(...ids.slice(0, need - picked.length));
  };
  for (const [, ids] of groups.filter(([pf]) => usedPfs.has(pf)).sort((a, b) => b[1].length - a[1].length)) take(ids);
  let rest = groups.filter(([pf]) => !usedPfs.has(pf));
  while (picked.length < need && rest.length) {
    const missing = need - picked.length;
    const fits = rest.filter(([, ids]) => ids.length >= missing).sort((a, b) => a[1].length - b[1].length || a[0].localeCompare(b[0]));
    const chosen = fits[0] ?? [...rest].sort((a, b) => b[1].length - a[1].length || a[0].localeCompare(b[0]))[0]!;
    take(chosen[1]);
    rest = rest.filter((g) => g !== chosen);
  }
  return picked;
}

/**
 * The preferred device IDs for one container. `placement` knows the pool's devices; IDs it does not
 * know (a device gone since the kubelet's last list) are offered only when nothing else is left.
 */
export function preferredAllocation(req: PreferenceRequest, placement: (id: string) => Placement | undefined): string[] {
  const chosen = [...new Set(req.mustInclude)];
  const need = req.size - chosen.length;
  if (need <= 0) return chosen;

  const taken = new Set(chosen);
  const candidates = [...new Set(req.available)].filter((id) => !taken.has(id)).sort();
  const known = candidates.filter((id) => placement(id) !== undefined);
  const unknown = candidates.filter((id) => placement(id) === undefined);
  const pfOf = (id: string): string => placement(id)!.pf;
  const numaOf = (id: string): number | null => placement(id)!.numaNode;
  const usedPfs = new Set(chosen.filter((id) => placement(id)).map(pfOf));
  const chosenNuma = groupBy(chosen.filter((id) => placement(id)), numaOf);

  // NUMA nodes that can hold the rest on their own; prefer the node the must-include devices sit on,
  // then the one that needs the fewest PFs, then the smallest (best fit), then the lowest ID.
  const fitting = [...groupBy(known, numaOf).entries()]
    .filter(([, ids]) => ids.length >= need)
    .map(([numa, ids]) => {
      const pick = fewestPfs(ids, need, usedPfs, pfOf);
      return { numa, ids, pick, pfs: new Set([...usedPfs, ...pick.map(pfOf)]).size, affinity: chosenNuma.get(numa)?.length ?? 0 };
    })
    .sort(
      (a, b) =>
        b.affinity - a.affinity ||
        a.pfs - b.pfs ||
        a.ids.length - b.ids.length ||
        (a.numa ?? Number.MAX_SAFE_INTEGER) - (b.numa ?? Number.MAX_SAFE_INTEGER),
    );
  const pick = fitting[0]?.pick ?? fewestPfs(known, need, usedPfs, pfOf);
  return [...chosen, ...pick, ...unknown.slice(0, need - pick.length)];
}

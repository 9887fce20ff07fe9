/**
 * ADD: validate → resolve the device → (ovn-kubernetes: the pod's addresses from its annotation)
 * → lock the VF → resolve again → reclaim what a gone pod left on it → record the state → IPAM
 * → (managed: the logical port) → port into br-int → netdev into the pod and representor up →
 * wait for ovn-installed → result. Each step is written to the state file before it touches the
 * host; a failure undoes the steps begun (the same routine as DEL).
 */
import { isNetworkNamespace, readHostLink, type Link } from '../host/netns.js';
import type { OvsdbClient } from '../host/ovsdb.js';
import type { VdpaEndpoint } from '../host/snapshot.js';
import { listStates, removeState, type AttachmentState, type AttachStep } from '../host/state.js';
import { ipamCall, lockVf, type CallContext } from './context.js';
import { CniError, ErrorCode, toCniError } from './errors.js';
import { ipamPlugin } from './ipam.js';
import { AttachmentJournal } from './journal.js';
import { ifaceIdOf } from './netconf.js';
import type { OvnkAttachment } from './ovnk.js';
import { resolveDevice, type ResolvedDevice } from './resolve.js';
import { EMPTY_RESULT, type Result, type ResultInterface } from './result.js';
import { allocateAddresses } from './steps/ipam.js';
import { createPort } from './steps/lsp.js';
import { identityOf, markFor, moveIn } from './steps/netdev.js';
import { connectOvs, plug, waitForOvn } from './steps/port.js';
import { representorUp } from './steps/representor.js';
import { attachmentGone } from './gone.js';
import { undoAttachment } from './undo.js';

/**
 * The device plugin hands a VF to a new pod once the old pod is gone, and the old pod's DEL may
 * not have run yet (or ever). Undo what an older attachment left on this VF first, but only when
 * that attachment is provably gone; its own DEL, when it comes, then finds nothing of it and
 * releases only its IPAM lease. A live holder keeps everything, and this ADD is refused.
 */
async function reclaimVf(ctx: CallContext, pciAddress: string): Promise<void> {
  const { states, errors } = listStates(ctx.paths.stateDir);
  for (const e of errors) ctx.log.warn('unreadable attachment state', { error: e });
  const mine = (s: AttachmentState) => s.containerId === ctx.env.containerId && s.ifname === ctx.env.ifname;
  for (const old of states.filter((s) => s.pciAddress === pciAddress)) {
    const gone = mine(old) ? 'the runtime runs ADD again for the same attachment' : await attachmentGone(old);
    const holder = { pciAddress, holderContainerID: old.containerId, holderIfname: old.ifname, holderNetns: old.netns, holderNetwork: old.network };
    if (!gone) {
      throw new CniError(
        ErrorCode.TryAgainLater,
        `VF ${pciAddress} is held by container ${old.containerId} interface ${old.ifname} (netns ${old.netns}), which still has it`,
        'the device was handed out twice; its holder keeps it until its DEL',
      );
    }
    ctx.log.warn('VF is still recorded for an attachment that is gone; undoing it first', { ...holder, why: gone });
    ctx.tally.reclaims++;
    await undoAttachment(old, { ipam: null, ovsdb: ctx.conf.ovsdb, log: ctx.log });
    removeState(ctx.paths.stateDir, old.containerId, old.ifname);
  }
}

/** The pod-side netdev as it is in the host now; it must be there to be handed out. */
function readNetdev(ep: VdpaEndpoint): Link | null {
  if (!ep.netdev) return null;
  const link = readHostLink(ep.netdev);
  if (!link) {
    throw new CniError(
      ErrorCode.InvalidConfig,
      `virtio netdev ${ep.netdev} of ${ep.pciAddress} is not in the host network namespace`,
      'another pod may still hold it',
    );
  }
  return link;
}

/**
 * The spec's result: the interfaces the attachment created (the representor in the host, and the
 * pod's netdev for virtio) and the addresses with the index of the interface they are on. A vhost
 * device creates no netdev in the pod: its addresses carry no interface index (the VM configures
 * them on its own virtio device).
 */
function buildResult(ctx: CallContext, ep: VdpaEndpoint, ipam: Result, pod: { mac: string | null; mtu: number | null }, rep: Link | null): Result {
  const prev = ctx.conf.prevResult ?? EMPTY_RESULT;
  const interfaces: ResultInterface[] = [...prev.interfaces];
  if (rep) interfaces.push({ name: rep.name, mac: rep.mac, mtu: ctx.conf.mtu ?? rep.mtu });
  let podIndex: number | null = null;
  if (ep.driver === 'virtio') {
    podIndex = interfaces.length;
    interfaces.push({
      name: ctx.env.ifname,
      ...(pod.mac ? { mac: pod.mac } : {}),
      ...(pod.mtu ? { mtu: pod.mtu } : {}),
      sandbox: ctx.env.netns,
      pciID: ep.pciAddress,
    });
  }
  return {
    interfaces,
    ips: [...prev.ips, ...ipam.ips.map((a) => (podIndex === null ? a : { ...a, interface: podIndex }))],
    routes: [...prev.routes, ...ipam.routes],
    dns: ipam.dns.nameservers?.length || ipam.dns.domain ? ipam.dns : prev.dns,
  };
}

/** Who names the logical port and where the addresses come from, decided before the host is touched. */
interface Plan {
  readonly ifaceId: string | null;
  /** ovn-kubernetes mode: what ovnkube-controller assigned; null: IPAM (or none). */
  readonly ovnk: OvnkAttachment | null;
}

/**
 * The steps (cni/steps/), in the order that lets OVN work while we do: the logical port (managed
 * mode) and the OVS port go in first, then the netdev into the pod with the representor brought
 * up alongside (only after its port exists, see docs/ovn.md).
 */
async function attach(ctx: CallContext, ep: VdpaEndpoint, plan: Plan): Promise<Result> {
  const { env, conf, log } = ctx;
  const { ifaceId, ovnk } = plan;
  const plugging = conf.bridge !== '';
  const ipam = ipamCall(ctx);
  const netdev = readNetdev(ep);
  const rep = plugging && ep.representor ? readHostLink(ep.representor) : null;
  if (plugging && !rep) {
    throw new CniError(ErrorCode.InvalidConfig, `representor ${ep.representor} of ${ep.pciAddress} is not in the host network namespace`);
  }
  const mac = ovnk?.mac ?? conf.mac ?? netdev?.mac ?? null;
  const podUid = ovnk?.podUid ?? env.args.podUid;
  // Managed mode: the logical port vdpa-cni creates, named by the iface-id.
  const managed = conf.ovn.mode === 'managed' && ifaceId ? { ...conf.ovn, name: ifaceId } : null;
  const journal = new AttachmentJournal(
    ctx.paths.stateDir,
    {
      network: conf.name,
      containerId: env.containerId,
      ifname: env.ifname,
      netns: env.netns,
      pciAddress: ep.pciAddress,
      driver: ep.driver,
      netdev: ep.netdev,
      netdevAlias: netdev?.alias ?? '',
      netdevMac: netdev?.mac ?? null,
      netdevMtu: netdev?.mtu ?? null,
      // Where it is now; the move may give it another ifindex, recorded once it is in the pod.
      netdevIdentity: netdev ? identityOf(netdev) : null,
      mark: ep.netdev ? markFor(conf.name, env.containerId, env.ifname, ep.netdev) : '',
      representor: plugging ? ep.representor : null,
      representorMtu: rep?.mtu ?? null,
      lsp: managed ? { name: managed.name, nbdb: managed.nbdb } : null,
      bridge: conf.bridge,
      ifaceId,
      steps: [],
      createdAt: new Date().toISOString(),
    },
    ctx.observer,
  );
  // OVSDB connects while IPAM runs: both are waits on other processes.
  const connecting: Promise<OvsdbClient | null> = plugging ? connectOvs(conf.ovsdb) : Promise.resolve(null);
  connecting.catch(() => undefined);
  try {
    const ipamResult = ipam ? await allocateAddresses(journal, ipam, log) : (ovnk?.addresses ?? EMPTY_RESULT);
    if (managed) {
      const lsp = { nbdb: managed.nbdb, logicalSwitch: managed.logicalSwitch, name: managed.name, mac, addresses: ipamResult, sandbox: env.containerId, podIfName: env.ifname, network: conf.name, podUid };
      await journal.step(['lsp'], () => createPort(lsp, ctx.paths.stateDir, log));
    }
    const client = await connecting;
    let installed: Promise<void> | null = null;
    if (rep && ifaceId && client) {
      await journal.step(['port'], () =>
        plug(client, log, ctx.paths.stateDir, {
          bridge: conf.bridge,
          port: rep.name,
          ifaceId,
          sandbox: env.containerId,
          podIfName: env.ifname,
          network: conf.name,
          podUid,
          ...(ovnk ? { externalIds: ovnk.externalIds } : {}),
          mac,
          ipAddresses: ipamResult.ips.map((a) => a.address),
          vfNetdevName: ep.netdev,
        }),
      );
      log.info('plugged representor', { bridge: conf.bridge, port: rep.name, ifaceId });
      // Watch from now on, so the work on the netdev overlaps OVN's.
      installed = conf.ovn.waitInstalled ? waitForOvn(client, rep.name, ifaceId, conf.ovn.timeoutMs) : null;
      installed?.catch(() => undefined);
    }
    const moving: AttachStep[] = [...(netdev ? (['netdev'] as const) : []), ...(rep ? (['representor'] as const) : [])];
    const pod = { netns: env.netns, ifname: env.ifname, mark: journal.state.mark, mac, mtu: conf.mtu, ipam: ipamResult };
    const inPod = await journal.step(moving, () => moveIn(netdev?.name ?? null, pod, rep ? [representorUp(rep.name, conf.mtu)] : []));
    if (inPod && inPod.ifindex !== journal.state.netdevIdentity?.ifindex) journal.update({ netdevIdentity: identityOf(inPod) });
    if (netdev) log.info('moved netdev into the pod', { netdev: netdev.name, ifname: env.ifname });
    if (installed) {
      await installed;
      log.info('OVN installed the port', { port: rep?.name, ifaceId });
    }
    return buildResult(ctx, ep, ipamResult, { mac, mtu: conf.mtu ?? netdev?.mtu ?? null }, rep);
  } catch (err) {
    await rollback(ctx, journal.state, err);
    throw err;
  } finally {
    (await connecting.catch(() => null))?.close();
  }
}

/** Undo the steps begun; the state file stays when that fails, so DEL can finish the job. */
async function rollback(ctx: CallContext, state: AttachmentState, cause: unknown): Promise<void> {
  ctx.log.error('ADD failed; undoing what it did', { error: cause, steps: state.steps });
  ctx.tally.rollbacks++;
  try {
    await undoAttachment(state, { ipam: ipamCall(ctx), ovsdb: ctx.conf.ovsdb, log: ctx.log });
    removeState(ctx.paths.stateDir, state.containerId, state.ifname);
  } catch (err) {
    const c = toCniError(cause);
    const incomplete = `rollback incomplete, DEL will retry: ${(err as Error).message}`;
    throw new CniError(c.code, c.message, c.details ? `${c.details}; ${incomplete}` : incomplete);
  }
}

function resolve(ctx: CallContext, plugging: boolean): ResolvedDevice {
  const { conf, log } = ctx;
  const resolved = resolveDevice({ deviceId: conf.deviceId, deviceInfoFile: conf.deviceInfoFile, needRepresentor: plugging }, ctx.paths, log);
  const ep = resolved.endpoint;
  log.info('resolved device', { source: resolved.source, pciAddress: ep.pciAddress, vdpa: ep.vdpaDevice, driver: ep.driver, netdev: ep.netdev, representor: ep.representor });
  return resolved;
}

export async function cmdAdd(ctx: CallContext): Promise<Result> {
  const { env, conf } = ctx;
  if (!isNetworkNamespace(env.netns)) {
    throw new CniError(ErrorCode.InvalidEnv, `CNI_NETNS: ${env.netns} is not a network namespace`);
  }
  const plugging = conf.bridge !== '';
  const ipam = ipamCall(ctx);
  if (ipam) ipamPlugin(ipam);
  const { pciAddress } = resolve(ctx, plugging).endpoint;
  let plan: Plan;
  if (conf.ovn.mode === 'ovn-kubernetes') {
    // Only this mode loads the API client; the wait for the annotation touches nothing on the host.
    const { ovnkAttachment } = await import('./ovnk.js');
    const ovnk = await ovnkAttachment({ ...conf, ovn: conf.ovn }, env, ctx.log);
    plan = { ifaceId: ovnk.ifaceId, ovnk };
  } else {
    plan = { ifaceId: plugging ? ifaceIdOf(conf, env) : null, ovnk: null };
  }
  const lock = await lockVf(ctx, pciAddress);
  try {
    // What the node looked like before the wait is stale: a DEL may have returned the netdev since.
    const ep = resolve(ctx, plugging).endpoint;
    await reclaimVf(ctx, ep.pciAddress);
    return await attach(ctx, ep, plan);
  } finally {
    await lock.release();
  }
}

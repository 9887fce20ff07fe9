/**
 * CHECK: every promise ADD made still holds — the netdev in the pod with its name, mark, MAC, MTU,
 * addresses and routes; the port in the bridge with the expected iface-id, installed by OVN; and
 * all of it agrees with prevResult. The first mismatch is the error.
 */
import { isNetworkNamespace, listAddresses, listLinks, listRoutes } from '../host/netns.js';
import { readState, type AttachmentState } from '../host/state.js';
import { ipamCall, type CallContext } from './context.js';
import { CniError, ErrorCode } from './errors.js';
import { canonicalIp, parseCidr } from './ip.js';
import { ipamCheck } from './ipam.js';
import { ifaceIdOf } from './netconf.js';
import { connectOvs, ownedPorts, OvsUnavailableError } from './steps/port.js';
import type { Result, ResultInterface } from './result.js';

const mismatch = (msg: string): CniError => new CniError(ErrorCode.Internal, `CHECK: ${msg}`);

function podInterface(ctx: CallContext, prev: Result): ResultInterface {
  const pod = prev.interfaces.find((i) => i.name === ctx.env.ifname && i.sandbox === ctx.env.netns);
  if (!pod) {
    throw mismatch(`prevResult has no interface ${ctx.env.ifname} with sandbox ${ctx.env.netns}`);
  }
  return pod;
}

async function checkNetdev(ctx: CallContext, state: AttachmentState, prev: Result, pod: ResultInterface): Promise<void> {
  const { env, conf } = ctx;
  const link = (await listLinks(env.netns)).find((l) => l.name === env.ifname);
  if (!link) throw mismatch(`no interface ${env.ifname} in ${env.netns}`);
  if (link.alias !== state.mark) throw mismatch(`${env.ifname} in the pod is not the netdev of ${state.pciAddress} (alias "${link.alias}")`);
  const wantMac = conf.mac ?? pod.mac;
  if (wantMac && link.mac !== wantMac) throw mismatch(`${env.ifname} has MAC ${link.mac}, expected ${wantMac}`);
  const wantMtu = conf.mtu ?? pod.mtu;
  if (wantMtu && link.mtu !== wantMtu) throw mismatch(`${env.ifname} has MTU ${link.mtu}, expected ${wantMtu}`);
  if (!link.up) throw mismatch(`${env.ifname} is down`);
  const podIndex = prev.interfaces.indexOf(pod);
  const have = new Set((await listAddresses(env.netns, env.ifname)).map((a) => `${canonicalIp(a.address)}/${a.prefix}`));
  for (const ip of prev.ips.filter((a) => a.interface === undefined || a.interface === podIndex)) {
    const c = parseCidr(ip.address)!;
    if (!have.has(`${c.ip}/${c.prefix}`)) throw mismatch(`${env.ifname} lacks address ${ip.address}`);
  }
  const routes = await listRoutes(env.netns, env.ifname);
  for (const r of prev.routes) {
    const c = parseCidr(r.dst)!;
    const dst = c.prefix === 0 ? 'default' : c.prefix === (c.family === 4 ? 32 : 128) ? c.ip : `${c.ip}/${c.prefix}`;
    const table = r.table === undefined ? 'main' : String(r.table);
    const found = routes.some(
      (x) => x.family === c.family && x.dst === dst && x.table === table && (!r.gw || canonicalIp(x.gateway) === canonicalIp(r.gw)),
    );
    if (!found) throw mismatch(`no route to ${r.dst}${r.gw ? ` via ${r.gw}` : ''} on ${env.ifname}`);
  }
}

async function checkPort(ctx: CallContext, state: AttachmentState): Promise<void> {
  const { env, conf } = ctx;
  const expected = ifaceIdOf(conf, env);
  if (state.ifaceId !== expected) throw mismatch(`iface-id was ${state.ifaceId}, the config now gives ${expected}`);
  let client;
  try {
    client = await connectOvs(conf.ovsdb);
  } catch (err) {
    if (err instanceof OvsUnavailableError) throw mismatch(`OVSDB unreachable: ${err.message}`);
    throw err;
  }
  try {
    const ports = await ownedPorts(client, env);
    const port = ports.find((p) => p.name === state.representor);
    if (!port) throw mismatch(`representor ${state.representor} is not a port of ours in OVS`);
    if (port.bridge !== conf.bridge) throw mismatch(`port ${port.name} is on bridge ${port.bridge}, expected ${conf.bridge}`);
    if (port.ifaceId !== expected) throw mismatch(`port ${port.name} has iface-id ${port.ifaceId}, expected ${expected}`);
    if (conf.ovn.waitInstalled && !port.ovnInstalled) throw mismatch(`port ${port.name} is not ovn-installed`);
  } finally {
    client.close();
  }
}

export async function cmdCheck(ctx: CallContext): Promise<void> {
  const { env, conf } = ctx;
  const prev = conf.prevResult;
  if (!prev) throw new CniError(ErrorCode.InvalidConfig, 'prevResult: required for CHECK');
  if (!isNetworkNamespace(env.netns)) throw new CniError(ErrorCode.InvalidEnv, `CNI_NETNS: ${env.netns} is not a network namespace`);
  const ipam = ipamCall(ctx);
  if (ipam) await ipamCheck(ipam);
  const state = readState(ctx.paths.stateDir, env.containerId, env.ifname);
  if (!state) throw mismatch(`no attachment recorded for container ${env.containerId} interface ${env.ifname}`);
  if (conf.deviceId && conf.deviceId !== state.pciAddress) throw mismatch(`deviceID ${conf.deviceId}, attached ${state.pciAddress}`);
  // A vhost device puts no netdev in the pod, so the result lists none to check.
  if (state.driver === 'virtio') {
    const pod = podInterface(ctx, prev);
    if (pod.pciID && pod.pciID !== state.pciAddress) throw mismatch(`prevResult pciID ${pod.pciID}, attached ${state.pciAddress}`);
    await checkNetdev(ctx, state, prev, pod);
  }
  if (state.bridge) await checkPort(ctx, state);
}

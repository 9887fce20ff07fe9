/** STATUS (1.1.0): ready when OVSDB answers and the bridge exists; code 50 otherwise. */
import { ipamCall, type CallContext } from './context.js';
import { CniError, ErrorCode } from './errors.js';
import { ipamStatus } from './ipam.js';
import { ovsStatus } from '../host/ovs-ports.js';
import { connectOvs, OvsUnavailableError } from './steps/port.js';

export async function cmdStatus(ctx: CallContext): Promise<void> {
  const { conf, log } = ctx;
  const ipam = ipamCall(ctx);
  if (ipam) {
    try {
      await ipamStatus(ipam);
    } catch (err) {
      throw new CniError(ErrorCode.NotAvailable, `IPAM plugin ${ipam.type} is not ready: ${(err as Error).message}`);
    }
  }
  if (!conf.bridge) return;
  let client;
  try {
    client = await connectOvs(conf.ovsdb);
  } catch (err) {
    if (!(err instanceof OvsUnavailableError)) throw err;
    throw new CniError(ErrorCode.NotAvailable, `OVSDB at ${conf.ovsdb} is unreachable`, err.message);
  }
  try {
    const s = await ovsStatus(client, conf.bridge);
    if (!s.bridgeExists) throw new CniError(ErrorCode.NotAvailable, `OVS bridge ${conf.bridge} does not exist`);
    log.info('ready', { bridge: conf.bridge, hwOffload: s.hwOffload, tcPolicy: s.tcPolicy, ovsVersion: s.ovsVersion });
  } finally {
    client.close();
  }
}

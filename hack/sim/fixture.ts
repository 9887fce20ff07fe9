/**
 * Writes the simulated node's NIC (the fixture sysfs tree) and node.json; run by hack/sim/up.sh
 * after the veth pairs exist. Arguments: the logical switch and the subnet up.sh chose.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture } from '../../test/support/fixture.js';
import { POOL_CONFIG, SIM_DIR, SIM_NODE_FILE, type SimNode } from './node.js';

const [logicalSwitch, subnet, ...pairs] = process.argv.slice(2);
if (!logicalSwitch || !subnet || pairs.length !== 4) {
  console.error('usage: fixture.mjs <logical switch> <subnet> <netdev>:<representor> ×4');
  process.exit(2);
}
const ends = pairs.map((p) => p.split(':') as [string, string]);
const drivers = ['virtio', 'virtio', 'vhost', 'vhost'] as const;

const fx = buildFixture({
  tmpDir: SIM_DIR,
  pfs: [{ vfs: ends.map(([netdev, representor], i) => ({ vdpa: drivers[i], netdev, representor })) }],
});
const write = (path: string, value: unknown) => {
  writeFileSync(`${path}.tmp`, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
};
const node: SimNode = {
  dir: SIM_DIR,
  fixtureRoot: fx.root,
  sysfsRoot: fx.sysfsRoot,
  devRoot: fx.devRoot,
  kubeletDir: join(SIM_DIR, 'kubelet', 'device-plugins'),
  devinfoDir: join(SIM_DIR, 'devinfo'),
  cniStateDir: join(SIM_DIR, 'cni-state'),
  configPath: join(SIM_DIR, 'config.json'),
  logicalSwitch,
  subnet,
  vfs: fx.vfs.map((vf, i) => ({
    pci: vf.pci,
    pf: vf.pf,
    vdpa: vf.vdpa[0]!,
    driver: drivers[i]!,
    netdev: ends[i]![0],
    representor: vf.representor!,
    vhost: vf.vhost,
  })),
};
mkdirSync(node.kubeletDir, { recursive: true });
write(node.configPath, POOL_CONFIG);
write(SIM_NODE_FILE, node);

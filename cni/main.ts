/**
 * The vdpa-cni entry point. VERSION (runtimes ask it often, and on its own) and --help are
 * answered here from a few small modules; every other verb loads the rest (cni/call.ts) first,
 * which on Bun costs more than the whole VERSION call.
 */
import { readFileSync } from 'node:fs';
import { emit, print } from './output.js';
import { requestedVersion, versionInfo } from './version.js';

const HELP = `vdpa-cni — CNI plugin that hands a vDPA VF's virtio netdev to a pod and plugs
its representor into OVN's br-int.

It is run by the container runtime (kubelet, Multus, podman), not by hand:
  CNI_COMMAND=ADD|DEL|CHECK|STATUS|GC|VERSION, the network config on stdin,
  the result or a CNI error as JSON on stdout, logs on stderr (and logFile).

Network config keys (all optional but type and name):
  deviceID          VF PCI address (Multus injects it; or runtimeConfig.deviceID)
  mac, mtu          pod interface MAC (runtimeConfig.mac wins) and MTU
  ipam              delegated IPAM plugin, found in CNI_PATH
  bridge            OVS bridge for the representor (default "br-int"; "" = no OVS)
  ovsdb             OVSDB socket (default "unix:/var/run/openvswitch/db.sock")
  ovn               {"ifaceId": "{namespace}_{pod}", "waitInstalled": true, "timeout": "30s"}
  logFile, logLevel JSON-lines log file; debug|info|warn|error (default info)
Capabilities: deviceID, CNIDeviceInfoFile, mac.

Environment overrides (tests): VDPA_SYSFS_ROOT, VDPA_DEV_ROOT, VDPA_DEVINFO_DIR,
VDPA_STATE_DIR (default /var/lib/cni/vdpa-k8s).

Options:
  --help      show this text
  --version   print the supported CNI versions
`;

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    emit(1, HELP);
    return 0;
  }
  if (argv.includes('--version')) {
    print(versionInfo(undefined));
    return 0;
  }
  const stdin = readStdin();
  const requested = requestedVersion(stdin);
  if (process.env.CNI_COMMAND === 'VERSION') {
    print(versionInfo(requested));
    return 0;
  }
  const { runCall } = await import('./call.js');
  return runCall(stdin, requested);
}

// Exit as soon as the answer is out (every write is synchronous): nothing is left to flush, and
// a lingering socket must not keep the runtime waiting.
main().then(
  (code) => process.exit(code),
  (err) => {
    emit(2, `vdpa-cni: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);

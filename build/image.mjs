// npm run image: builds build/Containerfile with podman into vdpa-k8s:<version>. No registry is
// reachable, so there is no base image: the image is FROM scratch with exactly what its programs
// need, staged here: the two executables, the host tools provisioning runs (devlink, vdpa, ip,
// ethtool, modprobe, flock) and the shared libraries `ldd` lists for each.
//   node build/image.mjs [--tag NAME]   (default vdpa-k8s:<package.json version>)
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ensureBuilt, root } from './dev.mjs';

const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
const i = process.argv.indexOf('--tag');
const tag = i > 0 ? process.argv[i + 1] : `vdpa-k8s:${version}`;
const rootfs = join(root, 'build', 'out', 'image-rootfs');

/** What each program of the image is, and where it goes. */
const PROGRAMS = [
  [join(root, 'build', 'out', 'vdpa-device-plugin'), '/usr/bin/vdpa-device-plugin'],
  [join(root, 'build', 'out', 'vdpa-cni'), '/usr/bin/vdpa-cni'],
  ['/usr/sbin/devlink', '/usr/sbin/devlink'],
  ['/usr/sbin/vdpa', '/usr/sbin/vdpa'],
  ['/usr/sbin/ip', '/usr/sbin/ip'],
  ['/usr/sbin/ethtool', '/usr/sbin/ethtool'],
  ['/usr/bin/kmod', '/usr/bin/kmod'],
  ['/usr/bin/flock', '/usr/bin/flock'],
];

/** The shared libraries a program loads, with the dynamic loader, as absolute paths. */
function libraries(file) {
  const out = execFileSync('ldd', [file], { encoding: 'utf8' });
  return [...out.matchAll(/(\/\S+\.so[.\d]*)/g)].map((m) => m[1]);
}

function place(from, to) {
  const dest = join(rootfs, to);
  mkdirSync(dirname(dest), { recursive: true });
  copyFileSync(from, dest);
  chmodSync(dest, 0o755);
}

export async function stageRootfs() {
  await ensureBuilt();
  rmSync(rootfs, { recursive: true, force: true });
  const libs = new Set();
  for (const [from, to] of PROGRAMS) {
    if (!existsSync(from)) throw new Error(`image: ${from} is missing (install iproute2, ethtool, kmod, util-linux)`);
    place(from, to);
    for (const lib of libraries(from)) libs.add(lib);
  }
  for (const lib of libs) place(lib, lib);
  symlinkSync('../bin/kmod', join(rootfs, 'usr/sbin/modprobe'));
  // The DaemonSet mounts these; a read-only root needs them to exist.
  for (const d of ['sys', 'dev', 'proc', 'tmp', 'etc', 'host/opt/cni/bin', 'lib/modules', 'var/lib/kubelet', 'var/run', 'var/lib/cni']) mkdirSync(join(rootfs, d), { recursive: true });
  return rootfs;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await stageRootfs();
  execFileSync('podman', ['build', '--quiet', '-f', join(root, 'build', 'Containerfile'), '-t', tag, rootfs], { stdio: ['ignore', 'inherit', 'inherit'] });
  const size = Number(execFileSync('podman', ['image', 'inspect', '--format', '{{.Size}}', tag], { encoding: 'utf8' }).trim());
  console.log(`image ${tag}: ${(size / 1e6).toFixed(1)} MB`);
}

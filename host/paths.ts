/**
 * Host paths, overridable for tests that run against a fixture tree instead of a real NIC.
 * These overrides exist for that reason only.
 */
export interface HostPaths {
  readonly sysfsRoot: string;
  readonly devRoot: string;
  readonly devinfoDir: string;
  readonly stateDir: string;
}

export const DEFAULT_PATHS: HostPaths = {
  sysfsRoot: '/sys',
  devRoot: '/dev',
  devinfoDir: '/var/run/k8s.cni.cncf.io/devinfo',
  stateDir: '/var/lib/cni/vdpa-k8s',
};

/** Defaults, then the VDPA_* environment variables. */
export function pathsFromEnv(env: NodeJS.ProcessEnv = process.env): HostPaths {
  return {
    sysfsRoot: env.VDPA_SYSFS_ROOT || DEFAULT_PATHS.sysfsRoot,
    devRoot: env.VDPA_DEV_ROOT || DEFAULT_PATHS.devRoot,
    devinfoDir: env.VDPA_DEVINFO_DIR || DEFAULT_PATHS.devinfoDir,
    stateDir: env.VDPA_STATE_DIR || DEFAULT_PATHS.stateDir,
  };
}

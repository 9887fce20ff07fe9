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

/** Where `provision --install-boot` puts the boot unit and the NetworkManager and udev rules. */
export interface EtcPaths {
  readonly systemdDir: string;
  readonly networkManagerDir: string;
  readonly udevRulesDir: string;
}

/** Under /etc, or under VDPA_ETC_DIR for tests. */
export function etcPathsFromEnv(env: NodeJS.ProcessEnv = process.env): EtcPaths {
  const etc = env.VDPA_ETC_DIR || '/etc';
  return { systemdDir: `${etc}/systemd/system`, networkManagerDir: `${etc}/NetworkManager/conf.d`, udevRulesDir: `${etc}/udev/rules.d` };
}

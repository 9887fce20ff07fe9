const HELP = `vdpa-device-plugin — advertises vDPA-backed VFs to the kubelet as extended resources.

Usage: vdpa-device-plugin [flags]

Flags:
  --help      show this text
`;

function main(): number {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  process.stderr.write('vdpa-device-plugin: not implemented yet; see --help\n');
  return 2;
}

process.exitCode = main();

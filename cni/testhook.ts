/**
 * Test-only fault injection: VDPA_CNI_TEST_PAUSE=before:<step> or after:<step> (steps: ipam,
 * netdev, port, representor) makes ADD print `{"testPause":"<point>"}` on stderr at that point
 * and wait there forever, so a suite can kill -9 it at an exact step and then run DEL.
 * Unset (always, outside the test suites) it does nothing.
 */
export async function testPause(point: string): Promise<void> {
  if (process.env.VDPA_CNI_TEST_PAUSE !== point) return;
  process.stderr.write(JSON.stringify({ testPause: point }) + '\n');
  await new Promise(() => setInterval(() => undefined, 1 << 30));
}
